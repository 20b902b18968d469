import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distEntry } from './cli.js';
import { capturedLogs } from './secrets.js';

/**
 * The real service as a separate process (dist/main.js, built by the global setup), for tests that kill it
 * or run several. It listens on PORT=0; the port is read from Fastify's "Server listening
 * at" log line. Every line it writes goes to capturedLogs for the hygiene scan.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | string | null>;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export function startService(env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [distEntry('main')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const timer = setTimeout(
      () => fail(new Error(`service did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const onLine = (line: string) => {
      capturedLogs.push(line);
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m?.[1] && !done) {
        done = true;
        clearTimeout(timer);
        resolve({
          url: m[1],
          child,
          exited,
          kill: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) onLine(l);
      });
    }
    exited.then((code) =>
      fail(new Error(`service exited (${code}) before listening:\n${capturedLogs.slice(-5).join('\n')}`)),
    );
  });
}

/** Runs the service until it exits by itself (a start-up refusal): its exit code and all it wrote. */
export function runServiceToExit(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [distEntry('main')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  for (const s of [child.stdout, child.stderr])
    s.on('data', (d: Buffer) => {
      out += d.toString();
    });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })));
}
