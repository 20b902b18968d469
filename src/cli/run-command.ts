import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { UsageError } from './exit-codes.js';

// Signals a supervisor (CI runner, container runtime, terminal) sends that the command
// must receive instead of us. SIGKILL and SIGSTOP cannot be caught, by anyone.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

type Exit = { code: number } | { signal: NodeJS.Signals };

/** Starts the command with stdio inherited and our signals forwarded; resolves when it ends. */
function start(
  command: string,
  args: string[],
  secrets: Record<string, string>,
  dropEnv: readonly string[],
): { child: ChildProcess; exited: Promise<Exit> } {
  for (const [k, v] of Object.entries(secrets)) {
    if (v.includes('\0'))
      throw new UsageError(`${k} contains a NUL character, which no environment can hold`);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...secrets };
  for (const name of dropEnv) delete env[name];
  const child = spawn(command, args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => {
    child.kill(sig);
  };
  for (const sig of FORWARDED) process.on(sig, forward);
  const detach = () => {
    for (const sig of FORWARDED) process.off(sig, forward);
  };
  const exited = new Promise<Exit>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      detach();
      const why =
        err.code === 'ENOENT'
          ? `command not found: ${command} (check its name, or give its path; PATH is searched for names without a /)`
          : err.code === 'EACCES'
            ? `${command} is not executable (chmod +x it, or run it through its interpreter: secrets run -- sh ${command})`
            : `cannot start ${command}: ${err.code ?? err.message}`;
      process.stderr.write(`secrets run: ${why}\n`);
      resolve({ code: err.code === 'ENOENT' ? 127 : 126 });
    });
    child.on('exit', (code, signal) => {
      detach();
      resolve(signal ? { signal } : { code: code ?? 1 });
    });
  });
  return { child, exited };
}

/**
 * The exit code to leave with: the command's own, or 128 + n when signal n ended it (the
 * shell convention), after dying of the same signal so our parent sees what its child's
 * child saw; the code is the fallback for a signal whose default action does not terminate.
 */
function leave(exit: Exit): number {
  if ('code' in exit) return exit.code;
  process.kill(process.pid, exit.signal);
  return 128 + (constants.signals[exit.signal] ?? 0);
}

/**
 * Starts `command` with the secrets added to this process's environment, stdio inherited,
 * forwarding signals; resolves with the exit code to leave with.
 */
export async function runWithEnv(
  command: string,
  args: string[],
  secrets: Record<string, string>,
  dropEnv: readonly string[],
): Promise<number> {
  return leave(await start(command, args, secrets, dropEnv).exited);
}

export interface WatchOptions {
  intervalMs: number;
  /** Send this signal on a change instead of restarting (the command re-reads on its own). */
  signal?: NodeJS.Signals | undefined;
  /** The new secrets when a value changed since the last call, else null. */
  changed: () => Promise<Record<string, string> | null>;
  warn: (line: string) => void;
  /**
   * Live change notices (the event stream): `wake` asks `changed` at once. While the
   * stream is connected the interval poll runs only every POLL_WHILE_LIVE-th tick, as a
   * safety net; without it (refused, dropped) it polls every interval.
   */
  subscribe?: (wake: () => void) => { connected(): boolean; stop(): void };
}

/** With a live stream, the poll runs on every this-many-th interval only. */
const POLL_WHILE_LIVE = 6;

/**
 * run --watch: like runWithEnv, and every intervalMs asks `changed`; on a change it
 * restarts the command with the new values (SIGTERM, wait, start again) or, with
 * `signal`, sends it that signal. The command ending on its own ends the watch.
 */
export async function runWatching(
  command: string,
  args: string[],
  secrets: Record<string, string>,
  dropEnv: readonly string[],
  opts: WatchOptions,
): Promise<number> {
  let env = secrets;
  let check: () => void = () => {};
  const live = opts.subscribe?.(() => check());
  for (;;) {
    const { child, exited } = start(command, args, env, dropEnv);
    let restarting = false;
    let busy = false;
    let tick = 0;
    check = async () => {
      if (busy || restarting) return;
      busy = true;
      try {
        const next = await opts.changed();
        if (!next) return;
        if (opts.signal) {
          opts.warn(`a secret changed: sending ${opts.signal} to the command`);
          child.kill(opts.signal);
          return;
        }
        opts.warn('a secret changed: restarting the command');
        env = next;
        restarting = true;
        child.kill('SIGTERM');
      } catch (err) {
        opts.warn(`watch: ${(err as Error).message}; will retry`);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => {
      tick++;
      if (!live?.connected() || tick % POLL_WHILE_LIVE === 0) check();
    }, opts.intervalMs);
    const exit = await exited;
    clearInterval(timer);
    if (!restarting) {
      live?.stop();
      return leave(exit);
    }
  }
}
