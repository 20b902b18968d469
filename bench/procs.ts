import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Process plumbing for the harness: free ports, servers as child processes, RSS sampling. */

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface Server {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` directly (not through npx), so the pid we sample is the server
 * itself. Its stdout/stderr (the service's JSON logs) go to logFile, as in production.
 */
export async function startServer(
  name: string,
  nodeArgs: string[],
  env: Record<string, string>,
  logFile: string,
  cwd: string = ROOT,
): Promise<Server> {
  const port = await freePort();
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, nodeArgs, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', out, out],
  });
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`${name} exited during start-up (see ${logFile})`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer /health within 60 s (see ${logFile})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    url,
    pid: child.pid!,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a process in MB (VmRSS, or VmHWM: the peak since it started). */
export async function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return m?.[1] ? Math.round(Number(m[1]) / 102.4) / 10 : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time (user + system, ms) the process has used so far. Divided by the requests served
 * it gives the server's cost per request, which, unlike req/s, hardly moves when other
 * users of this shared machine take the cores for a while.
 */
export async function cpuMs(pid: number): Promise<number> {
  const { user, system } = await cpuSplitMs(pid);
  return user + system;
}

/** The same, split into user and system (kernel: sockets, files) time, ms. */
export async function cpuSplitMs(pid: number): Promise<{ user: number; system: number }> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // USER_HZ is 100 on Linux
    return { user: (Number(f[11]) * 1000) / 100, system: (Number(f[12]) * 1000) / 100 };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** Samples VmRSS every intervalMs until stopped; returns the samples (MB) in order. */
export function sampleRss(pid: number, intervalMs: number) {
  const samples: { t: number; mb: number }[] = [];
  const start = Date.now();
  const tick = async () => samples.push({ t: (Date.now() - start) / 1000, mb: await rssMb(pid) });
  void tick();
  const timer = setInterval(() => void tick(), intervalMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      return samples;
    },
    max: () => Math.max(0, ...samples.map((s) => s.mb)),
  };
}

/** Runs bench/load.ts in its own process and parses its one line of JSON. */
export function runLoad<T>(spec: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify(spec)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as T);
      } catch {
        reject(new Error(`load generator printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}
