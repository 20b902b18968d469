import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs the compiled secrets CLI (dist/, built once by test/global-setup.ts) as a child
 * process, as the installed package's bin does.
 */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * A compiled entry point in dist/ (`main`, `cli/rewrap`...): tests start the service and the
 * operator commands from dist/ as the installed package does, not through tsx, which would
 * compile the sources again in every process.
 */
export const distEntry = (name: string) => fileURLToPath(new URL(`../../dist/${name}.js`, import.meta.url));

export const CLI_ARGS = [distEntry('cli/secrets')];

/** Every stderr any CLI run in this file printed (tests assert no value reached it). */
export const cliStderr: string[] = [];

export function startCli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string } = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], { env, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.end(opts.input ?? '');
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => {
      cliStderr.push(stderr);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export const cli = (...a: Parameters<typeof startCli>) => startCli(...a).done;
