import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { UsageError } from './exit-codes.js';

// Signals a supervisor (CI runner, container runtime, terminal) sends that the command
// must receive instead of us. SIGKILL and SIGSTOP cannot be caught, by anyone.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Starts `command` with the secrets added to this process's environment, stdio inherited,
 * forwarding signals; resolves with the exit code to leave with: the command's own code,
 * or 128 + n when signal n ended it (the shell convention), after re-raising the signal.
 */
export function runWithEnv(
  command: string,
  args: string[],
  secrets: Record<string, string>,
  dropEnv: readonly string[],
): Promise<number> {
  for (const [k, v] of Object.entries(secrets)) {
    if (v.includes('\0'))
      throw new UsageError(`${k} contains a NUL character, which no environment can hold`);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...secrets };
  for (const name of dropEnv) delete env[name];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => {
      child.kill(sig);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    const detach = () => {
      for (const sig of FORWARDED) process.off(sig, forward);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      detach();
      process.stderr.write(`secrets run: cannot start ${command}: ${err.code ?? err.message}\n`);
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      detach();
      if (signal) {
        // Die of the same signal, so our parent sees what its child's child saw; the
        // code is the fallback for a signal whose default action does not terminate.
        process.kill(process.pid, signal);
        resolve(128 + (constants.signals[signal] ?? 0));
        return;
      }
      resolve(code ?? 1);
    });
  });
}
