import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { distIsStale } from '../scripts/dist-stale.mjs';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { parseBenchArgs, USAGE } from './args.js';
import { cliStartBench, renderCliStart } from './cli-start.js';
import { embeddedBench, renderEmbedded } from './embedded.js';
import {
  type EventsKind,
  type EventsPair,
  type EventsResult,
  type EventsWindow,
  percentiles,
  renderEvents,
  startBenchReceiver,
} from './events.js';
import {
  type CpuProbe,
  hostileCosts,
  type IsolationResult,
  isolationBench,
  type KindCost,
  renderIsolation,
} from './isolation.js';
import type { LoadResult, LoadSpec } from './load.js';
import { cpuMs, cpuSplitMs, ROOT, rssMb, runLoad, type Server, sampleRss, startServer } from './procs.js';
import { renderReplica, replicaBench } from './replica.js';
import { renderChart, renderTable } from './report.js';
import { SCENARIOS } from './scenarios.js';
import { seed, seededKey } from './seed.js';
import {
  type Backend,
  BENCH_DATABASE_URL,
  createStorage,
  postgresReachable,
  type Storage,
} from './storage.js';

/**
 * The benchmarks: `npm run bench -- --help` prints the parts and options (USAGE in
 * bench/args.ts). An unknown option stops the run before anything starts.
 */
const parsed = parseBenchArgs(process.argv.slice(2));
if (parsed.kind === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (parsed.kind === 'error') {
  process.stderr.write(`bench: ${parsed.message}\n`);
  process.exit(2);
}
const args = parsed.args;

/** The floor comparison's scenarios (--scenarios): read, mixed or both, in that order. */
const floorScenarios = (['read', 'mixed'] as const).filter((s) => args.scenarios.split(',').includes(s));
if (floorScenarios.length === 0) throw new Error(`--scenarios: read, mixed or both, not ${args.scenarios}`);

/**
 * How a compared tree is named in results: by its commit (`tree at 09ab413`), not by where it
 * was built on this machine, so a committed result says which code it measured.
 */
const compareLabel = (() => {
  if (!args.compare) return '';
  try {
    const head = execFileSync('git', ['-C', args.compare, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    });
    return `tree at ${head.trim()}`;
  } catch {
    return 'the compared tree';
  }
})();
const smoke = args.smoke;
const parts = new Set(args.only.split(','));
const settings = smoke
  ? // A fixed number of requests per target, sent once the server is ready: a smoke run proves
    // the harness answers every scenario whatever the machine's load (a time window on a busy
    // machine could close before the first answer); its numbers are not kept.
    {
      requests: 200 as number | undefined,
      warmup: 0,
      seconds: 0.5,
      connections: 32,
      seeded: 1000,
      scaleWarmup: 0,
      scaleSeconds: 0.5,
      soakSeconds: 0,
    }
  : {
      requests: undefined as number | undefined,
      warmup: 3,
      seconds: 10,
      connections: 32,
      seeded: 1000,
      scaleWarmup: 1,
      scaleSeconds: 3,
      soakSeconds: 300,
    };
if (args.seconds) settings.seconds = Number(args.seconds);
const SCALES: Record<Backend, number[]> = smoke
  ? { postgres: [1000], pglite: [1000] }
  : // 1M rows in PGlite (single-threaded WebAssembly, seeded through one connection) takes
    // longer than the rest of the run together; the embedded mode targets small deployments.
    { postgres: [1000, 100_000, 1_000_000], pglite: [1000, 100_000] };
if (args['scale-max']) {
  const max = Number(args['scale-max']);
  for (const b of Object.keys(SCALES) as Backend[]) SCALES[b] = SCALES[b].filter((n) => n <= max);
}

const keys = {
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(48).toString('base64'),
};
const token = mintAdminToken(loadConfig({ ...keys }), keys.JWT_SECRET, {
  sub: 'bench',
  ttlSeconds: 4 * 3600,
});
const logDir = await mkdtemp(join(tmpdir(), 'bench-logs-'));
const cleanups: (() => Promise<void>)[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Measured extends LoadResult {
  /** Requests served, warm-up included (the CPU figures are divided by this). */
  served: number;
  peakRssMb: number;
  /** Server CPU time per completed request, in microseconds. */
  cpuUsPerReq: number;
  /** The kernel's part of it (system time: socket and file writes), in microseconds. */
  sysUsPerReq: number;
  /** PostgreSQL floor pairs: audit rows not yet sealed when the load ended, and after settling. */
  unsealed?: { atEnd: number; afterSettle: number };
}

async function measure(
  server: Server,
  spec: Omit<LoadSpec, 'url' | 'token'>,
  /** Awaited after the load and before the CPU is read: background work the load left behind. */
  settle?: () => Promise<Pick<Measured, 'unsealed'>>,
): Promise<Measured> {
  const rss = sampleRss(server.pid, 250);
  const cpu0 = await cpuSplitMs(server.pid);
  // Warm-up requests are served too; count them into the CPU split only through the total.
  const r = await runLoad<LoadResult & { served: number }>({
    ...spec,
    ...(settings.requests ? { requests: settings.requests } : {}),
    url: server.url,
    token,
  });
  const settled = settle ? await settle() : {};
  const cpu1 = await cpuSplitMs(server.pid);
  const sys = cpu1.system - cpu0.system;
  const cpu = cpu1.user + sys - cpu0.user;
  rss.stop();
  const { served, ...rest } = r;
  return {
    ...rest,
    ...settled,
    served,
    peakRssMb: rss.max(),
    cpuUsPerReq: Math.round((cpu * 1000) / Math.max(1, served)),
    sysUsPerReq: Math.round((sys * 1000) / Math.max(1, served)),
  };
}

async function seeded(backend: Backend, rows: number): Promise<Storage> {
  const s = await createStorage(backend, keys);
  cleanups.push(() => s.drop());
  const rt = await s.open();
  try {
    await seed(rt.db, rt.keyring, 0, rows);
  } finally {
    await rt.close();
  }
  return s;
}

/**
 * Storage seeded by another tree's own harness (`--compare DIR`): its migrations, so an older
 * build does not meet migrations it does not know.
 */
async function seededIn(root: string, backend: Backend): Promise<Storage> {
  const st = (await import(join(root, 'bench/storage.ts'))) as typeof import('./storage.js');
  const sd = (await import(join(root, 'bench/seed.ts'))) as typeof import('./seed.js');
  const s = await st.createStorage(backend, keys);
  cleanups.push(() => s.drop());
  const rt = await s.open();
  try {
    await sd.seed(rt.db, rt.keyring, 0, settings.seeded);
  } finally {
    await rt.close();
  }
  return s;
}

async function start(
  name: string,
  nodeArgs: readonly string[],
  env: Record<string, string>,
  cwd: string = ROOT,
) {
  const server = await startServer(name, [...nodeArgs], env, join(logDir, `${name}.log`), cwd);
  cleanups.push(() => server.stop());
  return server;
}

// The full run measures the service as it ships (the Dockerfile runs `node dist/main.js`:
// tsx's loader alone adds about 60 MB of RSS); the smoke run skips the build, so it uses
// dist/ only when it is current (CI builds it first) and tsx otherwise.
// The reference servers run under tsx: it costs them memory at load, not time per request.
const SERVICE = smoke && distIsStale(ROOT) ? ['--import', 'tsx', 'src/main.ts'] : ['dist/main.js'];
const BARE = ['--import', 'tsx', 'bench/targets/bare.ts'];
const TARGETS = [
  ['service', SERVICE, {}],
  ['ceiling', BARE, { BENCH_MODE: 'ceiling' }],
  ['floor', BARE, { BENCH_MODE: 'floor' }],
] as const;

async function throughput(backend: Backend) {
  const servers: Record<string, Server> = {};
  await Promise.all(
    TARGETS.map(async ([name, entry, extra]) => {
      const storage = await seeded(backend, settings.seeded);
      servers[name] = await start(`${backend}-${name}`, entry, { ...storage.env, ...extra });
    }),
  );
  const rows = [];
  for (const scenario of SCENARIOS) {
    const result: Record<string, Measured> = {};
    // The three targets run back to back per scenario, so a change in background load
    // on this shared machine hits all three alike.
    for (const [name] of TARGETS) {
      const spec = {
        scenario,
        seeded: settings.seeded,
        connections: settings.connections,
        warmupSeconds: settings.warmup,
        seconds: settings.seconds,
      };
      result[name] = await measure(servers[name]!, spec);
      log(`  ${backend} ${scenario} ${name}: ${JSON.stringify(result[name])}`);
    }
    const ours = result.service!;
    rows.push({
      scenario,
      service: ours,
      ceiling: result.ceiling!,
      floor: result.floor!,
      vsCeiling: Math.round((ours.rps / Math.max(1, result.ceiling!.rps)) * 100) / 100,
      vsFloor: Math.round((ours.rps / Math.max(1, result.floor!.rps)) * 100) / 100,
    });
  }
  const peakRssMb = await rssMb(servers.service!.pid, 'VmHWM');
  for (const s of Object.values(servers)) await s.stop();
  return { rows, servicePeakRssMb: peakRssMb };
}

/**
 * CPU (ms) used so far by the PostgreSQL backends serving one target, found by the
 * application_name its DATABASE_URL sets. Read from /proc (the server runs on this machine;
 * pg_stat_statements is not installed). Background processes (WAL writer, checkpointer) are
 * shared with everything else on the machine and not counted.
 */
async function backendCpu(appName: string, seen: Map<number, number>): Promise<number> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    const rows = await c.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [appName],
    );
    for (const { pid } of rows.rows) seen.set(pid, await cpuMs(pid));
  } finally {
    await c.end();
  }
  // A backend that exited keeps the last figure read for it.
  return [...seen.values()].reduce((a, b) => a + b, 0);
}

/**
 * Rows inserted, updated or deleted so far in one instance's schema (the bench gives each
 * its own), all tables and the webhook tables (deliveries, attempts) alone.
 */
async function dbCounters(schema: string): Promise<{ rows: number; webhookRows: number }> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    const r = await c.query<{ r: string; w: string }>(
      `SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) AS r,
              sum(n_tup_ins + n_tup_upd + n_tup_del) FILTER (WHERE relname LIKE 'webhook_%') AS w
       FROM pg_stat_user_tables WHERE schemaname = $1`,
      [schema],
    );
    return { rows: Number(r.rows[0]?.r ?? 0), webhookRows: Number(r.rows[0]?.w ?? 0) };
  } finally {
    await c.end();
  }
}

/** The schema a PostgreSQL storage's server works in (bench/storage.ts puts it in the URL). */
function schemaOf(env: Record<string, string>): string | undefined {
  const options = env.DATABASE_URL ? new URL(env.DATABASE_URL).searchParams.get('options') : null;
  return options?.match(/search_path=(\w+)/)?.[1];
}

/** Audit rows of one schema the sealer has not sealed yet (at or past the chain head). */
async function unsealedRows(schema: string): Promise<number> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    const r = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema}.audit_log
       WHERE xid >= COALESCE((SELECT xid_to FROM ${schema}.audit_chain_head), '0'::xid8)`,
    );
    return r.rows[0]?.n ?? 0;
  } finally {
    await c.end();
  }
}

/**
 * How long a floor turn waits, at most, for the sealer to seal the rows its load wrote, and how
 * long without progress it takes for a held-back sealer (it runs every second).
 */
const SEAL_SETTLE_MS = 5000;
const SEAL_STALLED_MS = 1500;

/**
 * Sealing happens in the server on a 1 s timer, about a tenth of its CPU per request under the
 * mixed load. A turn waits (up to SEAL_SETTLE_MS) until its rows are sealed before the server's
 * CPU is read, so every tree's figure holds the sealing of its own requests. A tree whose sealer
 * is held back (before the schema-local horizon, any transaction of the whole cluster that ran
 * long stopped sealing) leaves rows unsealed: `afterSettle` shows it, and its CPU per request
 * then lacks that work.
 */
async function settleSealing(schema: string): Promise<Pick<Measured, 'unsealed'>> {
  const atEnd = await unsealedRows(schema);
  let left = atEnd;
  const deadline = Date.now() + SEAL_SETTLE_MS;
  let progressAt = Date.now();
  // Waiting on a held-back sealer would only add idle CPU to the turn: it stops after
  // SEAL_STALLED_MS without a row sealed.
  while (left > 0 && Date.now() < deadline && Date.now() - progressAt < SEAL_STALLED_MS) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await unsealedRows(schema);
    if (now < left) progressAt = Date.now();
    left = now;
  }
  return { unsealed: { atEnd, afterSettle: left } };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

/** The benign caller's connections in the isolation part (a serverless-sized client). */
const ISOLATION_CONNECTIONS = 8;

/** Requests of each hostile kind sent to measure its CPU cost (bench/isolation.ts hostileCosts). */
const ISOLATION_COST_REQUESTS = Number(process.env.ISOLATION_COST_REQUESTS ?? 200);

/** The compared tree's isolation figures (--compare DIR), by backend. */
const isolationCompared: Record<string, IsolationResult> = {};

/**
 * Issue 21: the benign p99 beside hostile and heavy callers, against itself alone
 * (bench/isolation.ts). With --compare DIR, the other tree's built service runs the same
 * turns on its own seeded storage, pair by pair in alternating order, so the two trees'
 * ratios come from the same minutes of the machine's load.
 */
async function isolation(backend: Backend): Promise<IsolationResult> {
  const hostileToken = mintAdminToken(loadConfig({ ...keys }), keys.JWT_SECRET, {
    sub: 'hostile',
    ttlSeconds: 4 * 3600,
  });
  const trees: { name: string; server: Server; cpu: CpuProbe }[] = [];
  // Each tree's PostgreSQL backends carry an application name, so their CPU can be read.
  const named = (env: Record<string, string>, appName: string) => {
    if (!env.DATABASE_URL) return env;
    const url = new URL(env.DATABASE_URL);
    url.searchParams.set('application_name', appName);
    return { ...env, DATABASE_URL: url.toString() };
  };
  const probe = (server: Server, appName: string): CpuProbe => {
    const seen = new Map<number, number>();
    return async () => ({
      service: await cpuMs(server.pid),
      postgres: backend === 'postgres' ? await backendCpu(appName, seen) : null,
    });
  };
  const storage = await seeded(backend, settings.seeded);
  const thisApp = `bench-isolation-${randomBytes(3).toString('hex')}`;
  const thisServer = await start(`${backend}-isolation`, SERVICE, named(storage.env, thisApp));
  trees.push({ name: 'this', server: thisServer, cpu: probe(thisServer, thisApp) });
  if (args.compare) {
    const other = await seededIn(args.compare, backend);
    const otherApp = `bench-isolation-${randomBytes(3).toString('hex')}`;
    const server = await start(
      `${backend}-isolation-compare`,
      ['dist/main.js'],
      named(other.env, otherApp),
      args.compare,
    );
    trees.push({ name: 'compare', server, cpu: probe(server, otherApp) });
  }
  const pairs: Record<string, IsolationResult[]> = { this: [], compare: [] };
  const costs: Record<string, KindCost[]> = {};
  const pairCount = smoke ? 1 : Number(args.pairs);
  try {
    for (let i = 0; i < pairCount; i++) {
      for (const tree of i % 2 === 1 ? [...trees].reverse() : trees) {
        if (trees.length > 1) log(`  ${tree.name === 'this' ? 'this tree' : compareLabel}:`);
        pairs[tree.name]!.push(
          await isolationBench({
            url: tree.server.url,
            token,
            hostileToken,
            seeded: settings.seeded,
            connections: ISOLATION_CONNECTIONS,
            seconds: settings.seconds,
            amount: settings.requests,
            pairs: 1,
            log,
            cpu: tree.cpu,
          }),
        );
      }
    }
    // What each hostile kind costs per request, in CPU: the load-independent figure.
    if (!smoke)
      for (const tree of trees)
        costs[tree.name] = await hostileCosts({
          url: tree.server.url,
          hostileToken,
          cpu: tree.cpu,
          amount: ISOLATION_COST_REQUESTS,
        });
  } finally {
    for (const t of trees) await t.server.stop();
  }
  const merged = (name: string) => ({
    ...mergeIsolation(pairs[name]!),
    ...(costs[name] ? { costs: costs[name] } : {}),
  });
  if (args.compare) isolationCompared[`${backend} (${compareLabel})`] = merged('compare');
  return merged('this');
}

/** One result from single-pair runs: every pair, the median ratio, all failures. */
function mergeIsolation(runs: IsolationResult[]): IsolationResult {
  const all = runs.flatMap((r) => r.pairs);
  const ratios = all.map((p) => p.p99Ratio).sort((a, b) => a - b);
  return {
    pairs: all,
    medianP99Ratio: ratios[Math.floor(ratios.length / 2)] ?? 0,
    benignFailuresUnderLoad: runs.reduce((n, r) => n + r.benignFailuresUnderLoad, 0),
  };
}

/**
 * Issue 26: writes with one webhook subscription against none, side by side (bench/events.ts).
 * Three instances on their own seeded storage: `none` (no subscription), `fanout` (one
 * enabled subscription, WEBHOOK_POLL_MS=0: the trigger queues a delivery row in every
 * writer's transaction but nothing delivers them) and `one` (the same, delivering to the
 * receiver in this process). Before `none` or `fanout` is measured, `one`'s backlog drains
 * (the receiver has every event written to it), so no delivery work runs in their windows.
 */
async function eventsPairs(backend: Backend): Promise<EventsResult> {
  const receiver = startBenchReceiver();
  const hook = await receiver.listen();
  cleanups.push(() => receiver.close());
  const env = {
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_POLL_MS: process.env.BENCH_WEBHOOK_POLL_MS ?? '50',
  };
  const appNames: Record<string, string> = {};
  const dbNames: Record<string, string> = {};
  const storageEnvs: Record<string, Record<string, string>> = {};
  const instance = async (kind: EventsKind, extra: Record<string, string>) => {
    const storageEnv: Record<string, string> = { ...(await seeded(backend, settings.seeded)).env };
    storageEnvs[kind] = storageEnv;
    appNames[kind] = `bench-events-${kind}-${randomBytes(3).toString('hex')}`;
    if (storageEnv.DATABASE_URL) {
      const url = new URL(storageEnv.DATABASE_URL);
      dbNames[kind] = /search_path=(\w+)/.exec(url.searchParams.get('options') ?? '')?.[1] ?? '';
      url.searchParams.set('application_name', appNames[kind]);
      storageEnv.DATABASE_URL = url.toString();
    }
    // BENCH_PROFILE_DIR: a CPU profile of `one` (BENCH_PROFILE_ALL=1: of every kind), its
    // file named by the process id that the log line gives.
    const profile =
      process.env.BENCH_PROFILE_DIR && (kind === 'one' || process.env.BENCH_PROFILE_ALL === '1')
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
        : [];
    const server = await start(`${backend}-events-${kind}`, [...profile, ...SERVICE], {
      ...storageEnv,
      ...env,
      ...extra,
    });
    if (profile.length > 0) log(`  ${backend} events ${kind}: process ${server.pid} profiled`);
    return server;
  };
  const servers: Record<EventsKind, Server> = {
    none: await instance('none', {}),
    fanout: await instance('fanout', { WEBHOOK_POLL_MS: '0' }),
    one: await instance('one', {}),
  };
  for (const kind of ['fanout', 'one'] as const) {
    const sub = await fetch(`${servers[kind].url}/api/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: hook }),
    });
    if (sub.status !== 201)
      throw new Error(`creating the subscription failed: ${sub.status} ${await sub.text()}`);
  }
  const spec = {
    scenario: 'update' as const,
    seeded: settings.seeded,
    connections: settings.connections,
    warmupSeconds: settings.warmup,
    seconds: settings.seconds,
    ...(process.env.BENCH_EVENTS_RATE ? { rate: Number(process.env.BENCH_EVENTS_RATE) } : {}),
  };
  // Writes served by `one` (warm-up included: each is one event for its subscription).
  let oneWrites = 0;
  /** Writes served by `fanout`: each queued a delivery that nothing sent. */
  let fanoutWrites = 0;
  const backlog = () => Math.max(0, oneWrites - receiver.delays.length);
  /** Waits until `one` has delivered everything written to it (at most 5 minutes). */
  const drain = async () => {
    const t0 = Date.now();
    await receiver.sync();
    while (backlog() > 0 && Date.now() - t0 < 300_000) {
      await new Promise((r) => setTimeout(r, 100));
      await receiver.sync();
    }
    // Requests in flight when a window closed wrote events the load generator did not count:
    // wait, too, until nothing has arrived for 500 ms.
    for (let seen = -1; seen !== receiver.delays.length && Date.now() - t0 < 300_000; ) {
      seen = receiver.delays.length;
      await new Promise((r) => setTimeout(r, 500));
      await receiver.sync();
    }
    return { ms: Date.now() - t0, left: backlog() };
  };
  const seen: Record<string, Map<number, number>> = { none: new Map(), fanout: new Map(), one: new Map() };
  const pairs: EventsPair[] = [];
  const n = smoke ? 1 : Number(args.pairs);
  for (let i = 0; i < n; i++) {
    // Alternating the order, so a drift in background load hits every instance alike.
    const kinds: EventsKind[] = i % 2 === 0 ? ['none', 'fanout', 'one'] : ['one', 'fanout', 'none'];
    const got: Partial<Record<EventsKind, EventsWindow>> = {};
    let drainMs = 0;
    for (const kind of kinds) {
      if (kind !== 'one') {
        const d = await drain();
        drainMs += d.ms;
        if (d.left > 0) log(`  ${backend}: backlog of ${d.left} not drained after 5 minutes`);
      }
      const pg0 = backend === 'postgres' ? await backendCpu(appNames[kind]!, seen[kind]!) : 0;
      const x0 = backend === 'postgres' ? await dbCounters(dbNames[kind]!) : null;
      const recv0 = await cpuSplitMs(receiver.pid);
      const m = await measure(servers[kind], spec);
      const recv1 = await cpuSplitMs(receiver.pid);
      await receiver.sync();
      const backlogAtEnd = kind === 'one' ? Math.max(0, oneWrites + m.served - receiver.delays.length) : 0;
      const pgCpu = backend === 'postgres' ? (await backendCpu(appNames[kind]!, seen[kind]!)) - pg0 : null;
      // The statistics collector publishes a backend's counters within a second or so.
      if (x0) await new Promise((r) => setTimeout(r, 1500));
      const x1 = x0 ? await dbCounters(dbNames[kind]!) : null;
      if (kind === 'one') oneWrites += m.served;
      if (kind === 'fanout') fanoutWrites += m.served;
      const per = (ms: number) => Math.round((ms * 1000) / Math.max(1, m.served));
      got[kind] = {
        rps: m.rps,
        p99: m.p99,
        served: m.served,
        serviceCpuUs: m.cpuUsPerReq,
        serviceSysUs: m.sysUsPerReq,
        pgCpuUs: pgCpu === null ? null : per(pgCpu),
        // Rows written per write: in all tables, and in webhook_deliveries/attempts alone.
        pgWebhookRows: x0 && x1 ? r2((x1.webhookRows - x0.webhookRows) / Math.max(1, m.served)) : null,
        pgRows: x0 && x1 ? r2((x1.rows - x0.rows) / Math.max(1, m.served)) : null,
        // The receiver runs in a process of its own: in production this work is on the
        // receiver's machine, here it takes a share of the same 2 cores.
        benchCpuUs: per(recv1.user + recv1.system - recv0.user - recv0.system),
        ...(kind === 'one' ? { backlogAtEnd } : {}),
      };
    }
    const a = got.none!;
    const f = got.fanout!;
    const b = got.one!;
    pairs.push({
      none: a,
      fanout: f,
      one: b,
      ratio: r2(b.rps / Math.max(1, a.rps)),
      fanoutRatio: r2(f.rps / Math.max(1, a.rps)),
      drainMs,
    });
    log(
      `  ${backend} events pair ${i + 1}: none ${a.rps}, fan-out only ${f.rps}, one ${b.rps} req/s; ` +
        `service CPU/write ${a.serviceCpuUs}/${f.serviceCpuUs}/${b.serviceCpuUs} us; ` +
        `PG CPU/write ${a.pgCpuUs}/${f.pgCpuUs}/${b.pgCpuUs} us; webhook rows/write ${a.pgWebhookRows}/${f.pgWebhookRows}/${b.pgWebhookRows}; ` +
        `rows/write ${a.pgRows}/${f.pgRows}/${b.pgRows}; receiver CPU/write ${b.benchCpuUs} us; backlog after one's window ${b.backlogAtEnd}; drain ${drainMs} ms`,
    );
  }
  // The backlog drains, then sequential writes show the delay without one.
  await drain();
  const loaded = percentiles(receiver.delays);
  receiver.delays.length = 0;
  oneWrites = 0;
  for (let i = 0; i < (smoke ? 5 : 200); i++) {
    await fetch(`${servers.one.url}/api/secrets/${seededKey(i % settings.seeded)}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: `light-${i}` }),
    });
    await new Promise((r) => setTimeout(r, 20));
  }
  const lightUntil = Date.now() + 60_000;
  while (receiver.delays.length < (smoke ? 5 : 200) && Date.now() < lightUntil) {
    await new Promise((r) => setTimeout(r, 500));
    await receiver.sync();
  }
  const light = percentiles(receiver.delays);
  // Delivery alone, no writes beside it: the fan-out instance queued a delivery for every
  // write it served and sent none. A fresh delivering instance on its storage sends them
  // (full batches), and the CPU it, its PostgreSQL backends and the receiver spend per
  // event delivered is the cost of a delivery, measured in CPU time, not in a rate that
  // other work on the machine moves.
  await servers.fanout.stop();
  receiver.delays.length = 0;
  const seenDrain = new Map<number, number>();
  /**
   * Starts a delivering instance of `root`'s build on the fan-out storage and measures it
   * until nothing more arrives (or `until` events arrived), then stops it.
   */
  const drainWith = async (label: string, root: string, until: number) => {
    const app = `bench-events-drain-${randomBytes(3).toString('hex')}`;
    const drainEnv: Record<string, string> = { ...storageEnvs.fanout!, ...env };
    if (drainEnv.DATABASE_URL) {
      const url = new URL(drainEnv.DATABASE_URL);
      url.searchParams.set('application_name', app);
      drainEnv.DATABASE_URL = url.toString();
    }
    const profile =
      process.env.BENCH_PROFILE_DIR && label === 'this'
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
        : [];
    const drainer = await start(
      `${backend}-events-drain-${label}`,
      [...profile, join(root, 'dist/main.js')],
      drainEnv,
      root,
    );
    await receiver.sync();
    seenDrain.clear();
    const cpu = async () => ({
      svc: await cpuSplitMs(drainer.pid),
      recv: await cpuSplitMs(receiver.pid),
      pg: backend === 'postgres' ? await backendCpu(app, seenDrain) : 0,
      n: receiver.delays.length,
    });
    const d0 = await cpu();
    const tD = Date.now();
    // Until `until` events arrived (a part of the backlog, so no idle tail in the figures),
    // or nothing more arrived for a second after the first (the backlog ran out first; the
    // first arrives only after the instance has fanned the backlog's events out).
    for (let seen = d0.n, quietSince = Date.now(); receiver.delays.length - d0.n < until; ) {
      const quiet = seen > d0.n ? 1000 : 60_000;
      if (Date.now() - quietSince > quiet || Date.now() - tD > 300_000) break;
      await new Promise((r) => setTimeout(r, 100));
      await receiver.sync();
      if (receiver.delays.length !== seen) {
        seen = receiver.delays.length;
        quietSince = Date.now();
      }
    }
    const d1 = await cpu();
    await drainer.stop();
    const sent = Math.max(1, d1.n - d0.n);
    const perEvent = (ms: number) => Math.round((ms * 1000) / sent);
    const cost = {
      events: d1.n - d0.n,
      serviceUs: perEvent(d1.svc.user + d1.svc.system - d0.svc.user - d0.svc.system),
      pgUs: backend === 'postgres' ? perEvent(d1.pg - d0.pg) : null,
      receiverUs: perEvent(d1.recv.user + d1.recv.system - d0.recv.user - d0.recv.system),
      ms: Date.now() - tD,
    };
    log(
      `  ${backend} delivery alone (${label}): ${cost.events} events; per event service ${cost.serviceUs} us, ` +
        `PG ${cost.pgUs} us, receiver ${cost.receiverUs} us`,
    );
    return cost;
  };
  // BENCH_DRAIN_BASE=<another built tree> (PostgreSQL): that build and this one take turns
  // (base, this, base, this) on parts of the same backlog, so both costs come from one run.
  // (Its migration list must be a prefix of this one's; the newer rows are hidden from it
  // while it runs.) Each turn sends a fifth of the backlog; the last fifth stays queued.
  const base = process.env.BENCH_DRAIN_BASE;
  const turns: [string, string][] =
    base && backend === 'postgres'
      ? [
          ['base', base],
          ['this', ROOT],
          ['base', base],
          ['this', ROOT],
        ]
      : [['this', ROOT]];
  const part = Math.max(1, Math.floor((fanoutWrites * 0.8) / turns.length));
  const costs: Record<string, NonNullable<EventsResult['deliveryCost']>[]> = { base: [], this: [] };
  for (const [label, root] of turns) {
    let hidden: pg.QueryResult | undefined;
    if (label === 'base') {
      const known = (await readdir(join(base!, 'migrations'))).filter((f) => f.endsWith('.sql')).length;
      const c = new pg.Client({ connectionString: storageEnvs.fanout!.DATABASE_URL });
      await c.connect();
      hidden = await c.query('DELETE FROM schema_migrations WHERE version > $1 RETURNING *', [known]);
      await c.end();
    }
    costs[label]!.push(await drainWith(label, root, part));
    if (hidden) {
      const c = new pg.Client({ connectionString: storageEnvs.fanout!.DATABASE_URL });
      await c.connect();
      for (const r of hidden.rows)
        await c.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          r.version,
          r.name,
          r.checksum,
        ]);
      await c.end();
    }
  }
  /** Turns of one build added up: events, CPU per event over all of them. */
  const total = (cs: NonNullable<EventsResult['deliveryCost']>[]) => {
    if (cs.length === 0) return undefined;
    const events = cs.reduce((n, c) => n + c.events, 0);
    const w = (f: (c: (typeof cs)[number]) => number | null) =>
      Math.round(cs.reduce((n, c) => n + (f(c) ?? 0) * c.events, 0) / Math.max(1, events));
    return {
      events,
      serviceUs: w((c) => c.serviceUs),
      pgUs: cs[0]!.pgUs === null ? null : w((c) => c.pgUs),
      receiverUs: w((c) => c.receiverUs),
      ms: cs.reduce((n, c) => n + c.ms, 0),
    };
  };
  const deliveryCost = total(costs.this!);
  const deliveryCostBase = total(costs.base!);
  for (const s of Object.values(servers)) await s.stop();
  const col = (f: (p: EventsPair) => number | null | undefined) =>
    pairs.map(f).filter((x): x is number => typeof x === 'number');
  const med = (xs: number[]) => (xs.length ? median(xs) : null);
  return {
    pairs,
    medianRatio: median(pairs.map((p) => p.ratio)),
    medianFanoutRatio: median(pairs.map((p) => p.fanoutRatio)),
    medianCpu: Object.fromEntries(
      (['none', 'fanout', 'one'] as const).map((k) => [
        k,
        {
          serviceCpuUs: med(col((p) => p[k].serviceCpuUs)),
          pgCpuUs: med(col((p) => p[k].pgCpuUs)),
          benchCpuUs: med(col((p) => p[k].benchCpuUs)),
        },
      ]),
    ) as EventsResult['medianCpu'],
    loaded,
    light,
    deliveryCost,
    ...(deliveryCostBase ? { deliveryCostBase } : {}),
    delivered: loaded.count + light.count,
  };
}

async function floorPairs(backend: Backend) {
  const out: Record<string, unknown> = {};
  for (const scenario of floorScenarios) {
    const targets: Record<string, readonly string[]> = {
      service: SERVICE,
      ...(args.compare ? { compare: ['dist/main.js'] } : {}),
      floor: ['--import', 'tsx', 'bench/targets/floor.ts'],
    };
    const servers: Record<string, Server> = {};
    const appNames: Record<string, string> = {};
    const schemas: Record<string, string | undefined> = {};
    for (const [name, entry] of Object.entries(targets)) {
      const storage =
        name === 'compare' ? await seededIn(args.compare!, backend) : await seeded(backend, settings.seeded);
      // BENCH_SERVICE_ENV (JSON): extra settings for the service only, e.g. {"AUDIT_SEAL_INTERVAL_MS":"0"}.
      const env: Record<string, string> = {
        ...storage.env,
        ...(name === 'service' && process.env.BENCH_SERVICE_ENV
          ? JSON.parse(process.env.BENCH_SERVICE_ENV)
          : {}),
      };
      appNames[name] = `bench-${name}-${randomBytes(3).toString('hex')}`;
      schemas[name] = schemaOf(env);
      if (env.DATABASE_URL) {
        const url = new URL(env.DATABASE_URL);
        url.searchParams.set('application_name', appNames[name]);
        env.DATABASE_URL = url.toString();
      }
      // BENCH_PROFILE_DIR: the service writes a V8 CPU profile there when it stops (the
      // figures of such a run carry the profiler's overhead: profile and measure separately).
      const profile =
        name === 'service' && process.env.BENCH_PROFILE_DIR
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
          : [];
      servers[name] = await start(
        `${backend}-pairs-${scenario}-${name}`,
        [...profile, ...entry],
        env,
        name === 'compare' ? args.compare : ROOT,
      );
    }
    const pairs: Record<string, unknown>[] = [];
    for (let i = 0; i < Number(args.pairs); i++) {
      const pair: Record<string, Measured & { pgCpuUsPerReq: number | null }> = {};
      const names = Object.keys(targets);
      for (const name of args.compare && i % 2 === 1 ? names.reverse() : names) {
        const seen = new Map<number, number>();
        const pg0 = backend === 'postgres' ? await backendCpu(appNames[name]!, seen) : 0;
        const schema = schemas[name];
        const m = await measure(
          servers[name]!,
          {
            scenario,
            seeded: settings.seeded,
            connections: settings.connections,
            warmupSeconds: settings.warmup,
            seconds: settings.seconds,
          },
          // The floor writes no audit rows.
          backend === 'postgres' && name !== 'floor' && schema ? () => settleSealing(schema) : undefined,
        );
        const pgCpu = backend === 'postgres' ? (await backendCpu(appNames[name]!, seen)) - pg0 : null;
        // Divided by every request served, warm-up included, like the service CPU figure.
        pair[name] = {
          ...m,
          pgCpuUsPerReq: pgCpu === null ? null : Math.round((pgCpu * 1000) / Math.max(1, m.served)),
        };
        log(`  ${backend} ${scenario} pair ${i + 1} ${name}: ${JSON.stringify(pair[name])}`);
      }
      const s = pair.service!;
      const f = pair.floor!;
      const c = pair.compare;
      pairs.push({
        service: s,
        floor: f,
        throughput: r2(s.rps / Math.max(1, f.rps)),
        p99: r2(s.p99 / Math.max(1, f.p99)),
        serviceCpu: r2(s.cpuUsPerReq / Math.max(1, f.cpuUsPerReq)),
        pgCpu: s.pgCpuUsPerReq !== null && f.pgCpuUsPerReq ? r2(s.pgCpuUsPerReq / f.pgCpuUsPerReq) : null,
        ...(c
          ? {
              compare: c,
              compareThroughput: r2(c.rps / Math.max(1, f.rps)),
              compareServiceCpu: r2(c.cpuUsPerReq / Math.max(1, f.cpuUsPerReq)),
              // This tree's service CPU per request over the compared tree's, same pair.
              cpuVsCompare: r2(s.cpuUsPerReq / Math.max(1, c.cpuUsPerReq)),
            }
          : {}),
      });
    }
    for (const srv of Object.values(servers)) await srv.stop();
    // The service logs its audit batch statistics when it shuts down.
    let batches: unknown = null;
    try {
      const lines = (await readFile(join(logDir, `${backend}-pairs-${scenario}-service.log`), 'utf8')).split(
        '\n',
      );
      const line = lines.reverse().find((l) => l.includes('audit batch statistics'));
      batches = line ? JSON.parse(line).auditBatches : null;
    } catch {
      batches = null;
    }
    const col = (k: string) => pairs.map((p) => p[k] as number | null).filter((x): x is number => x !== null);
    out[scenario] = {
      pairs,
      median: {
        // The median of an even count averages two ratios: rounded like every other figure.
        throughput: r2(median(col('throughput'))),
        p99: r2(median(col('p99'))),
        serviceCpu: r2(median(col('serviceCpu'))),
        pgCpu: col('pgCpu').length ? r2(median(col('pgCpu'))) : null,
        ...(args.compare
          ? {
              compareThroughput: r2(median(col('compareThroughput'))),
              compareServiceCpu: r2(median(col('compareServiceCpu'))),
              cpuVsCompare: r2(median(col('cpuVsCompare'))),
            }
          : {}),
      },
      batches,
    };
  }
  return out;
}

function renderPairs(label: string, all: Record<string, Record<string, unknown>>): string {
  const lines = [
    `## Read path vs the primary-key floor (${label}, ${new Date().toISOString().slice(0, 16)}Z)`,
    '',
    `${settings.connections} connections, ${settings.seconds} s per target, ${args.pairs} alternating pairs; medians of the per-pair ratios (service / floor).`,
    '',
    '| backend | scenario | throughput | p99 | PostgreSQL CPU / req | service CPU / req | service req/s (median) | floor req/s (median) | audit batches: mean rows, max, count |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [backend, scenarios] of Object.entries(all)) {
    for (const [scenario, v] of Object.entries(scenarios)) {
      const x = v as {
        median: Record<string, number | null>;
        pairs: { service: Measured; floor: Measured }[];
        batches: { batches: number; rows: number; maxRows: number } | null;
      };
      const b = x.batches;
      lines.push(
        `| ${backend} | ${scenario} | ${x.median.throughput} x | ${x.median.p99} x | ${x.median.pgCpu ?? 'in process'}${x.median.pgCpu === null ? '' : ' x'} | ${x.median.serviceCpu} x | ${Math.round(median(x.pairs.map((p) => p.service.rps)))} | ${Math.round(median(x.pairs.map((p) => p.floor.rps)))} | ${b ? `${r2(b.rows / Math.max(1, b.batches))}, ${b.maxRows}, ${b.batches}` : 'n/a'} |`,
      );
      // The most audit rows a turn left unsealed after settling (0: every turn's CPU holds its sealing).
      const left = (k: 'service' | 'compare') =>
        Math.max(
          0,
          ...x.pairs.map((p) => (p as Record<string, Measured | undefined>)[k]?.unsealed?.afterSettle ?? 0),
        );
      const lag = (k: 'service' | 'compare') =>
        x.pairs.some((p) => (p as Record<string, Measured | undefined>)[k]?.unsealed)
          ? `; rows left unsealed after a turn, at most: ${left(k)}`
          : '';
      if (lag('service'))
        lines.push(`| ${backend} | ${scenario}: sealing | | | | | | | ${lag('service').slice(2)} |`);
      if (x.median.compareThroughput !== undefined)
        lines.push(
          `| ${backend} | ${scenario}, ${compareLabel} | ${x.median.compareThroughput} x | | | ${x.median.compareServiceCpu} x | | | this tree's service CPU / req: ${x.median.cpuVsCompare} x the compared tree's${lag('compare')} |`,
        );
    }
  }
  return `${lines.join('\n')}\n`;
}

async function scale(backend: Backend) {
  const storage = await createStorage(backend, keys);
  cleanups.push(() => storage.drop());
  const out = [];
  let have = 0;
  for (const size of SCALES[backend]) {
    const rt = await storage.open();
    const t0 = performance.now();
    await seed(rt.db, rt.keyring, have, size);
    const seedSeconds = Math.round((performance.now() - t0) / 100) / 10;
    have = size;
    // The last page: the cursor that leaves exactly the 50 oldest rows.
    const [edge] = await rt.db.query<{ seq: string }>(
      'SELECT seq::text AS seq FROM secrets ORDER BY seq ASC OFFSET 50 LIMIT 1',
    );
    await rt.close();
    const lastCursor = Buffer.from(`v1:${edge?.seq ?? '1'}`).toString('base64url');
    const server = await start(`${backend}-scale-${size}`, SERVICE, storage.env);
    const base = {
      scenario: 'read' as const,
      seeded: size,
      connections: 1,
      warmupSeconds: settings.scaleWarmup,
      seconds: settings.scaleSeconds,
    };
    const read = await measure(server, base);
    const firstPage = await measure(server, { ...base, fixedPath: '/api/secrets?limit=50' });
    const lastPage = await measure(server, {
      ...base,
      fixedPath: `/api/secrets?limit=50&cursor=${lastCursor}`,
    });
    await server.stop();
    out.push({ size, seedSeconds, read, firstPage, lastPage });
    log(`  ${backend} scale ${size}: read p50 ${read.p50} first ${firstPage.p50} last ${lastPage.p50}`);
  }
  return out;
}

async function soak(backend: Backend) {
  const storage = await seeded(backend, settings.seeded);
  const server = await start(`${backend}-soak`, SERVICE, storage.env);
  const rss = sampleRss(server.pid, 5000);
  const r = await runLoad<LoadResult>({
    scenario: 'mixed',
    seeded: settings.seeded,
    connections: settings.connections,
    warmupSeconds: 0,
    seconds: settings.soakSeconds,
    url: server.url,
    token,
  });
  const samples = rss.stop();
  samples.push({ t: settings.soakSeconds, mb: await rssMb(server.pid) });
  const peakRssMb = await rssMb(server.pid, 'VmHWM');
  await server.stop();
  const firstMinute = Math.max(0, ...samples.filter((s) => s.t <= 60).map((s) => s.mb));
  const end = samples[samples.length - 1]?.mb ?? 0;
  return { ...r, peakRssMb, firstMinuteRssMb: firstMinute, endRssMb: end, samples };
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  loadavgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  settings,
  backends: {} as Record<string, unknown>,
};
let failed = false;
try {
  if (!smoke && !args['skip-build']) {
    log('building dist/ (npm run build)');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  // The smoke run covers one backend (PostgreSQL when reachable) to stay well under a minute.
  const wanted = (smoke && args.backends === 'postgres,pglite' ? 'postgres' : args.backends).split(
    ',',
  ) as Backend[];
  const backends: Backend[] = [];
  for (const b of wanted) {
    if (b === 'postgres' && !(await postgresReachable())) {
      log('PostgreSQL is not reachable: skipping its column');
      if (smoke && wanted.length === 1) backends.push('pglite');
      continue;
    }
    backends.push(b);
  }
  if (parts.has('embedded')) {
    const trees = [{ label: 'service (this tree)', root: ROOT }];
    if (args.compare) trees.push({ label: `service (${compareLabel})`, root: args.compare });
    const reads = smoke ? 100 : Number(args.reads);
    const pairs = smoke ? 1 : Number(args.pairs);
    const rows = await embeddedBench({ trees, pairs, reads, log });
    results.embedded = rows;
    const md = renderEmbedded(rows, reads, pairs, results.loadavgAtStart as number[]);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/embedded-${args.label}.md`), md);
    }
  }
  if (parts.has('cli')) {
    const runs = smoke ? 2 : Number(args.runs);
    const rows = await cliStartBench({ runs, compare: args.compare, skipBuild: args['skip-build'], log });
    results.cliStart = rows;
    const md = renderCliStart(rows, runs, results.loadavgAtStart as number[]);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/cli-start-${args.label}.md`), md);
    }
  }
  if (parts.has('replica')) {
    const replica = await replicaBench({
      seeded: settings.seeded,
      connections: settings.connections,
      warmup: settings.warmup,
      seconds: settings.seconds,
      pairs: Number(args.pairs),
      log,
    });
    results.replica = replica;
    const md = renderReplica(args.label, replica, settings.connections, settings.seconds);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/replica-${args.label}.md`), md);
      await writeFile(
        join(ROOT, `bench/results/replica-${args.label}.json`),
        `${JSON.stringify(replica, null, 2)}\n`,
      );
    }
  }
  for (const backend of backends) {
    const entry: Record<string, unknown> = {};
    (results.backends as Record<string, unknown>)[backend] = entry;
    if (parts.has('floor')) entry.floorPairs = await floorPairs(backend);
    if (parts.has('isolation')) entry.isolation = await isolation(backend);
    if (parts.has('events')) entry.events = await eventsPairs(backend);
    if (parts.has('throughput')) entry.throughput = await throughput(backend);
    if (parts.has('scale')) entry.scale = await scale(backend);
    if (parts.has('soak') && settings.soakSeconds > 0 && backend === 'postgres')
      entry.soak = await soak(backend);
  }
  results.loadavgAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  if (parts.has('isolation')) {
    const all: Record<string, IsolationResult> = {};
    for (const [b, e] of Object.entries(results.backends as Record<string, { isolation?: IsolationResult }>))
      if (e.isolation) all[b] = e.isolation;
    Object.assign(all, isolationCompared);
    const md = renderIsolation(args.label, all, ISOLATION_CONNECTIONS);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/isolation-${args.label}.md`), md);
      await writeFile(
        join(ROOT, `bench/results/isolation-${args.label}.json`),
        `${JSON.stringify(all, null, 2)}\n`,
      );
    }
    for (const [b, r] of Object.entries(all)) {
      if (r.benignFailuresUnderLoad > 0) {
        failed = true;
        log(`isolation: ${b}: ${r.benignFailuresUnderLoad} benign requests failed beside hostile load`);
      }
    }
  }
  if (parts.has('events')) {
    const all: Record<string, EventsResult> = {};
    for (const [b, e] of Object.entries(results.backends as Record<string, { events?: EventsResult }>))
      if (e.events) all[b] = e.events;
    const md = renderEvents(args.label, all);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/events-${args.label}.md`), md);
      await writeFile(
        join(ROOT, `bench/results/events-${args.label}.json`),
        `${JSON.stringify(all, null, 2)}\n`,
      );
    }
  }
  if (parts.has('floor')) {
    const all: Record<string, Record<string, unknown>> = {};
    for (const [b, e] of Object.entries(
      results.backends as Record<string, { floorPairs?: Record<string, unknown> }>,
    ))
      if (e.floorPairs) all[b] = e.floorPairs;
    const md = renderPairs(args.label, all);
    process.stdout.write(md);
    if (!smoke) {
      await mkdir(join(ROOT, 'bench/results'), { recursive: true });
      await writeFile(join(ROOT, `bench/results/floor-${args.label}.md`), md);
      await writeFile(
        join(ROOT, `bench/results/floor-${args.label}.json`),
        `${JSON.stringify(all, null, 2)}\n`,
      );
    }
  }
  if (
    parts.size === 1 &&
    (parts.has('floor') ||
      parts.has('replica') ||
      parts.has('embedded') ||
      parts.has('isolation') ||
      parts.has('cli') ||
      parts.has('events'))
  ) {
    // The comparison alone: the full results table and files are left as they are.
  } else {
    if (args.merge) mergeEarlier(results, JSON.parse(await readFile(args.merge, 'utf8')));
    const table = renderTable(results);
    process.stdout.write(`${table}\n`);
    // A smoke run proves the harness works; its few-second numbers are not worth keeping.
    if (!smoke) {
      const dir = join(ROOT, 'bench/results');
      await mkdir(dir, { recursive: true });
      // A second run on the same day gets the time in its name instead of overwriting the first.
      const day = join(dir, `${String(results.date).slice(0, 10)}.json`);
      const file = existsSync(day)
        ? join(dir, `${String(results.date).slice(0, 16).replace(':', '-')}.json`)
        : day;
      await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
      await writeFile(join(dir, 'latest.md'), table);
      await writeFile(join(dir, 'latest.svg'), renderChart(results));
    }
    failed = smokeProblems(results).length > 0;
    for (const p of smokeProblems(results)) log(`harness failure: ${p}`);
  }
} catch (err) {
  failed = true;
  log(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  if (!failed) await rm(logDir, { recursive: true, force: true });
  else log(`server logs kept in ${logDir}`);
}
process.exit(failed ? 1 : 0);

/**
 * Fills in what this run did not measure from an earlier run (--merge), so latest.md stays
 * complete: whole parts per backend, and scale rows of sizes not measured again. Each
 * carried-over piece keeps the date of its run in `fromRun`, which the table prints.
 */
function mergeEarlier(now: typeof results, earlier: typeof results) {
  const from = String(earlier.date);
  type Part = Record<string, unknown> & { fromRun?: string };
  const mine = now.backends as Record<string, Record<string, unknown>>;
  for (const [backend, old] of Object.entries(earlier.backends as Record<string, Record<string, unknown>>)) {
    mine[backend] ??= {};
    const cur = mine[backend];
    for (const [part, value] of Object.entries(old)) {
      if (part === 'scale' && Array.isArray(cur.scale) && Array.isArray(value)) {
        const have = new Set((cur.scale as { size: number }[]).map((x) => x.size));
        for (const row of value as (Part & { size: number })[])
          if (!have.has(row.size)) (cur.scale as Part[]).push({ ...row, fromRun: row.fromRun ?? from });
        (cur.scale as { size: number }[]).sort((a, b) => a.size - b.size);
      } else if (part === 'scale' && Array.isArray(value)) {
        if (!(part in cur))
          cur.scale = (value as Part[]).map((row) => ({ ...row, fromRun: row.fromRun ?? from }));
      } else if (!(part in cur)) {
        cur[part] = { ...(value as Part), fromRun: (value as Part).fromRun ?? from };
      }
    }
  }
}

/** What makes a run invalid: a target that answered nothing, or answered with errors. */
function smokeProblems(r: typeof results): string[] {
  const problems: string[] = [];
  for (const [backend, e] of Object.entries(
    r.backends as Record<string, { throughput?: Awaited<ReturnType<typeof throughput>> }>,
  )) {
    for (const row of e.throughput?.rows ?? []) {
      for (const t of ['service', 'ceiling', 'floor'] as const) {
        const m = row[t];
        if (m.requests === 0) problems.push(`${backend} ${row.scenario} ${t}: no request completed`);
        if (m.non2xx > 0 || m.errors > 0)
          problems.push(`${backend} ${row.scenario} ${t}: ${m.non2xx} non-2xx, ${m.errors} errors`);
      }
    }
  }
  return problems;
}
