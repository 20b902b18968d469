import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distIsStale } from '../scripts/dist-stale.mjs';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { ROOT, startServer } from './procs.js';

/**
 * npm run bench -- --only cli [--runs N] [--compare BUNDLE] [--skip-build]
 * The light CLI's start-up, issue 25: `secrets run -- true` (packages/cli, built with
 * npm run build:cli) against `node -e 0`, and with --compare another CLI bundle (e.g. an
 * older packages/cli/dist/cli/secrets.cjs), against a local PGlite server holding one secret,
 * the credential from SECRETS_TOKEN_FILE. Each round runs every command once, the order
 * rotated round by round, so a change in the shared machine's load hits all alike; the
 * report gives each command's median and the medians of the per-round differences and
 * ratios to `node -e 0`. Wall time runs from spawn to exit; CPU (user + system) is the
 * kernel's account of the finished child (RUNNER below).
 */
export interface CliStartRow {
  label: string;
  wallMs: number;
  cpuMs: number;
  /** Median over rounds of (this - node -e 0), wall and CPU. */
  diffWallMs: number;
  diffCpuMs: number;
  /** Median over rounds of this / node -e 0, wall. */
  ratioWall: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Runs one command and prints "<wall seconds> <cpu seconds>": the wall clock around
 * posix_spawn and wait4, the CPU from wait4's rusage (user + system, microseconds; GNU
 * time's %U/%S round to 10 ms). Python because Node exposes no child's rusage; its own
 * start-up happens before the clock starts.
 */
const RUNNER = `
import os, sys, time
t0 = time.monotonic()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit("exit status %d" % os.waitstatus_to_exitcode(status))
print(wall, ru.ru_utime + ru.ru_stime)
`;

/** One run: wall and CPU milliseconds of the command (see RUNNER). */
function once(argv: string[], env: NodeJS.ProcessEnv): Promise<{ wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', RUNNER, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${argv.join(' ')} failed: ${err.trim()}`));
      const [wall, cpu] = out.trim().split(/\s+/).map(Number);
      resolve({ wall: (wall ?? 0) * 1000, cpu: (cpu ?? 0) * 1000 });
    });
  });
}

export async function cliStartBench(opts: {
  runs: number;
  compare?: string | undefined;
  skipBuild: boolean;
  log: (s: string) => void;
}): Promise<CliStartRow[]> {
  if (!opts.skipBuild) execFileSync('npm', ['run', '-s', 'build:cli'], { cwd: ROOT, stdio: 'inherit' });
  const dir = await mkdtemp(join(tmpdir(), 'bench-cli-'));
  const keys = {
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: randomBytes(48).toString('base64'),
  };
  const entry = distIsStale(ROOT) ? ['--import', 'tsx', 'src/main.ts'] : ['dist/main.js'];
  const server = await startServer(
    'cli-start',
    entry,
    { ...keys, DATA_DIR: join(dir, 'data') },
    join(dir, 'server.log'),
  );
  try {
    const token = mintAdminToken(loadConfig(keys), keys.JWT_SECRET, { sub: 'bench', ttlSeconds: 3600 });
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    const res = await fetch(`${server.url}/api/secrets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'BENCH_KEY', value: randomBytes(24).toString('base64') }),
    });
    if (!res.ok) throw new Error(`seeding the secret failed: HTTP ${res.status}`);
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      SECRETS_URL: server.url,
      SECRETS_TOKEN_FILE: tokenFile,
    };
    const node = process.execPath;
    const arms: { label: string; argv: string[] }[] = [
      { label: '`node -e 0`', argv: [node, '-e', '0'] },
      {
        label: 'light CLI `secrets run -- true`',
        argv: [node, join(ROOT, 'packages/cli/dist/cli/secrets.cjs'), 'run', '--', 'true'],
      },
    ];
    if (opts.compare)
      arms.push({
        label: `\`${opts.compare}\` \`run -- true\``,
        argv: [node, opts.compare, 'run', '--', 'true'],
      });
    for (const a of arms) await once(a.argv, env); // warm-up: the page cache, the server
    const samples = arms.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
    for (let r = 0; r < opts.runs; r++) {
      for (let i = 0; i < arms.length; i++) {
        const k = (i + r) % arms.length;
        const m = await once(arms[k]!.argv, env);
        samples[k]!.wall.push(m.wall);
        samples[k]!.cpu.push(m.cpu);
      }
      if ((r + 1) % 10 === 0) opts.log(`cli start-up: ${r + 1}/${opts.runs} rounds`);
    }
    const base = samples[0]!;
    return arms.map((a, k) => {
      const s = samples[k]!;
      return {
        label: a.label,
        wallMs: median(s.wall),
        cpuMs: median(s.cpu),
        diffWallMs: median(s.wall.map((w, r) => w - base.wall[r]!)),
        diffCpuMs: median(s.cpu.map((c, r) => c - base.cpu[r]!)),
        ratioWall: median(s.wall.map((w, r) => w / base.wall[r]!)),
      };
    });
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderCliStart(rows: CliStartRow[], runs: number, loadavg: number[]): string {
  const f = (n: number) => n.toFixed(0);
  let md = `### CLI start-up, ${new Date().toISOString().slice(0, 16)} UTC, ${runs} rounds, load average at start ${loadavg.map((l) => l.toFixed(1)).join(' ')}\n\n`;
  md +=
    '| command | wall (median) | CPU (median) | wall - `node -e 0` (median of rounds) | CPU - `node -e 0` | wall / `node -e 0` |\n';
  md += '|---|--:|--:|--:|--:|--:|\n';
  for (const r of rows) {
    md += `| ${r.label} | ${f(r.wallMs)} ms | ${f(r.cpuMs)} ms | ${f(r.diffWallMs)} ms | ${f(r.diffCpuMs)} ms | ${r.ratioWall.toFixed(2)} |\n`;
  }
  return md;
}
