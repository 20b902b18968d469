import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { freePort, ROOT, rssMb } from './procs.js';

/**
 * npm run bench -- --only embedded [--compare DIR] [--pairs N] [--reads N]
 * The embedded (PGlite) start-up, issue 27: first start on an empty DATA_DIR, a later start,
 * and resident memory after start and after N value reads (10,000), for bare PGlite (a node
 * process that opens the directory and answers `select 1`, then runs the reads as SELECTs)
 * and for the compiled service (dist/main.js) of this tree and, with --compare, of another
 * built tree (e.g. main's), in one run, alternating. Times run from spawn to ready, so node's
 * own start is in every row. Reported as medians over --pairs runs and as ratios to bare
 * PGlite of the same run: the machine is shared, so absolute times move with its load.
 */
export interface EmbeddedRow {
  label: string;
  firstMs: number;
  laterMs: number;
  firstRssMb: number;
  laterRssMb: number;
  readsRssMb: number;
}

const BARE = `
import { PGlite } from '@electric-sql/pglite';
const t0 = Number(process.env.T0);
const pg = new PGlite({ dataDir: process.env.DIR });
await pg.waitReady;
await pg.query('select 1');
const rss = () => Math.round(process.memoryUsage().rss / 1048576);
process.stdout.write(JSON.stringify({ ms: Date.now() - t0, rss: rss() }) + '\\n');
if (process.env.READS) {
  await pg.exec("create table if not exists kv (k text primary key, v bytea); insert into kv values ('K', '\\\\x00') on conflict do nothing");
  for (let i = 0; i < Number(process.env.READS); i++) await pg.query('select v from kv where k = $1', ['K']);
  process.stdout.write(JSON.stringify({ rss: rss() }) + '\\n');
}
await pg.close();
`;

/** bare PGlite in its own process: [{ms, rss}, {rss}?] */
function bare(dir: string, reads: number): Promise<{ ms: number; rss: number; readsRss?: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', BARE], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        DIR: dir,
        T0: String(Date.now()),
        READS: reads ? String(reads) : '',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`bare PGlite exited with ${code}`));
      const [a, b] = out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { ms: number; rss: number });
      resolve({ ms: a?.ms ?? 0, rss: a?.rss ?? 0, ...(b ? { readsRss: b.rss } : {}) });
    });
  });
}

interface Started {
  ms: number;
  pid: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts `node <root>/dist/main.js` on `dataDir`; resolves at its "secrets service ready" line. */
async function service(root: string, dataDir: string, env: Record<string, string>): Promise<Started> {
  const port = await freePort();
  const t0 = Date.now();
  const child: ChildProcess = spawn(process.execPath, [join(root, 'dist/main.js')], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      ...env,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      LOG_BUFFER_BYTES: '0',
      READ_RATE_LIMIT: '100000000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  const ms = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${root}: not ready within 180 s`)), 180_000);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('secrets service ready')) {
        clearTimeout(timer);
        resolve(Date.now() - t0);
        buf = '';
      } else buf = buf.slice(-200);
    });
    child.stderr?.on('data', () => {});
    child.once('exit', (code) => reject(new Error(`${root}: exited ${code} during start-up`)));
  });
  return {
    ms,
    pid: child.pid ?? 0,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await gone;
    },
  };
}

async function readMany(url: string, token: string, reads: number): Promise<void> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const made = await fetch(`${url}/api/secrets`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ key: 'BENCH_KEY', value: randomBytes(24).toString('base64') }),
  });
  if (made.status !== 201) throw new Error(`create answered ${made.status}`);
  let next = 0;
  const worker = async () => {
    while (next < reads) {
      next++;
      const res = await fetch(`${url}/api/secrets/BENCH_KEY`, { headers });
      if (res.status !== 200) throw new Error(`read answered ${res.status}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.floor((s.length - 1) / 2)] as number);
};

export async function embeddedBench(opts: {
  trees: { label: string; root: string }[];
  pairs: number;
  reads: number;
  log: (m: string) => void;
}): Promise<EmbeddedRow[]> {
  const samples = new Map<
    string,
    { first: number[]; later: number[]; fr: number[]; lr: number[]; rr: number[] }
  >();
  const add = (label: string, k: 'first' | 'later' | 'fr' | 'lr' | 'rr', v: number) => {
    const e = samples.get(label) ?? { first: [], later: [], fr: [], lr: [], rr: [] };
    e[k].push(v);
    samples.set(label, e);
  };
  const env = {
    NODE_ENV: 'development',
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: randomBytes(48).toString('base64'),
  };
  const token = mintAdminToken(loadConfig({ JWT_SECRET: env.JWT_SECRET }), env.JWT_SECRET, {
    sub: 'bench',
    ttlSeconds: 3600,
  });
  const work = await mkdtemp(join(tmpdir(), 'secrets-bench-embedded-'));
  try {
    for (let pair = 0; pair < opts.pairs; pair++) {
      // Alternate the order, so neither side always runs on a machine warmed (or loaded) by the other.
      const order =
        pair % 2 === 0
          ? ['bare', ...opts.trees.map((t) => t.label)]
          : [...opts.trees.map((t) => t.label), 'bare'];
      for (const label of order) {
        const dir = join(work, `${label}-${pair}`);
        if (label === 'bare') {
          await mkdir(dir, { recursive: true });
          const first = await bare(join(dir, 'pglite'), 0);
          const later = await bare(join(dir, 'pglite'), opts.reads);
          add(label, 'first', first.ms);
          add(label, 'fr', first.rss);
          add(label, 'later', later.ms);
          add(label, 'lr', later.rss);
          add(label, 'rr', later.readsRss ?? 0);
        } else {
          const root = opts.trees.find((t) => t.label === label)?.root ?? ROOT;
          const first = await service(root, dir, env);
          add(label, 'first', first.ms);
          add(label, 'fr', await rssMb(first.pid));
          await first.stop();
          const later = await service(root, dir, env);
          add(label, 'later', later.ms);
          add(label, 'lr', await rssMb(later.pid));
          await readMany(later.url, token, opts.reads);
          add(label, 'rr', await rssMb(later.pid));
          await later.stop();
        }
        opts.log(`embedded: ${label} pair ${pair + 1} done`);
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return [...samples.entries()].map(([label, e]) => ({
    label,
    firstMs: median(e.first),
    laterMs: median(e.later),
    firstRssMb: median(e.fr),
    laterRssMb: median(e.lr),
    readsRssMb: median(e.rr),
  }));
}

export function renderEmbedded(rows: EmbeddedRow[], reads: number, pairs: number, loadavg: number[]): string {
  const base = rows.find((r) => r.label === 'bare');
  const ratio = (v: number, b: number | undefined) => (b ? ` (${(v / b).toFixed(2)}x)` : '');
  const delta = (v: number, b: number | undefined) =>
    b === undefined ? '' : ` (${v - b >= 0 ? '+' : ''}${Math.round(v - b)})`;
  const lines = [
    `Embedded start-up, medians of ${pairs} run(s), load average at start ${loadavg.join(' ')}; ratios and differences against bare PGlite of the same run.`,
    '',
    `| | first start (empty DATA_DIR) | later start | first / later | RSS after first start, MB | RSS after later start, MB | RSS after ${reads.toLocaleString('en')} reads, MB |`,
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label === 'bare' ? 'bare PGlite' : r.label} | ${(r.firstMs / 1000).toFixed(1)} s${ratio(r.firstMs, r.label === 'bare' ? undefined : base?.firstMs)} | ${(r.laterMs / 1000).toFixed(1)} s${ratio(r.laterMs, r.label === 'bare' ? undefined : base?.laterMs)} | ${(r.firstMs / r.laterMs).toFixed(2)} | ${Math.round(r.firstRssMb)}${delta(r.firstRssMb, r.label === 'bare' ? undefined : base?.firstRssMb)} | ${Math.round(r.laterRssMb)}${delta(r.laterRssMb, r.label === 'bare' ? undefined : base?.laterRssMb)} | ${Math.round(r.readsRssMb)}${delta(r.readsRssMb, r.label === 'bare' ? undefined : base?.readsRssMb)} |`,
    ),
    '',
  ];
  return lines.join('\n');
}
