import { type ServiceInstance, startTopology } from '../scripts/topology.js';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { openRuntime } from '../src/runtime.js';
import type { LoadResult } from './load.js';
import { runLoad } from './procs.js';
import { seed } from './seed.js';

/**
 * `npm run bench -- --only replica`: read throughput of three service instances on one
 * primary, against three instances that also read from one asynchronous streaming replica
 * (DATABASE_READ_URL), in the same run on the same topology (scripts/topology.ts):
 * alternating pairs, the load split over the three instances (one autocannon process each).
 * Also: the share of reads the replica answered, the replica lag seen (/ready, sampled
 * every 250 ms during the replica runs) and the CPU the primary's and the replica's
 * PostgreSQL processes used per request.
 */

export interface ReplicaBenchSettings {
  seeded: number;
  connections: number;
  warmup: number;
  seconds: number;
  pairs: number;
  /** Fixed ports from here; default free ports (a fixed base may sit in the ephemeral range). */
  basePort?: number;
  log: (s: string) => void;
}

interface Side extends LoadResult {
  /** Sum of the three instances' answered requests (warm-up included). */
  served: number;
  primaryCpuUsPerReq: number;
  replicaCpuUsPerReq: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? 0 : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** utime + stime (and, with `reaped`, cutime + cstime: exited children) of one process, in ms. */
async function procCpuMs(pid: number, reaped: boolean): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/**
 * CPU (ms) of a whole cluster: the postmaster with every child it has reaped (backends that
 * ended, so the figure never goes down when connections close) plus its live children
 * (backends, WAL writer, startup/recovery process, WAL sender or receiver).
 */
async function clusterCpu(postmasterPid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  let children: number[] = [];
  try {
    children = (await readFile(`/proc/${postmasterPid}/task/${postmasterPid}/children`, 'utf8'))
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    children = [];
  }
  const live = await Promise.all(children.map((p) => procCpuMs(p, false)));
  return (await procCpuMs(postmasterPid, true)) + live.reduce((a, b) => a + b, 0);
}

async function postmasterPid(dataDir: string): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  return Number((await readFile(`${dataDir}/postmaster.pid`, 'utf8')).split('\n')[0]);
}

async function metric(base: string, re: RegExp): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(re.exec(text)?.[1] ?? 0);
}

export async function replicaBench(s: ReplicaBenchSettings) {
  const topo = await startTopology({
    syncStandby: false,
    asyncReplica: true,
    pgbouncer: false,
    redis: 'own',
    instances: 0,
    ...(s.basePort === undefined ? {} : { basePort: s.basePort }),
    env: { LOG_LEVEL: 'warn', AUDIT_SEAL_INTERVAL_MS: '1000' },
    log: s.log,
  });
  try {
    const config = loadConfig({ ...topo.env, NODE_ENV: 'test' });
    const token = mintAdminToken(config, topo.env.JWT_SECRET ?? '', { sub: 'bench', ttlSeconds: 4 * 3600 });
    // The first instance migrates; then the seed goes in through the primary.
    const plain: ServiceInstance[] = [await topo.startInstance()];
    const rt = await openRuntime(config, createLogger('warn'));
    try {
      await seed(rt.db, rt.keyring, 0, s.seeded);
    } finally {
      await rt.close();
    }
    plain.push(await topo.startInstance(), await topo.startInstance());
    const replicaEnv = { DATABASE_READ_URL: topo.urls.asyncReplica ?? '' };
    const withReplica: ServiceInstance[] = [];
    for (let i = 0; i < 3; i++) withReplica.push(await topo.startInstance(replicaEnv));
    const replicaName = `127.0.0.1:${topo.asyncReplica!.port}`;
    const pids = {
      primary: await postmasterPid(topo.primary.dataDir),
      replica: await postmasterPid(topo.asyncReplica!.dataDir),
    };

    async function run(instances: ServiceInstance[], scenario: 'read' | 'mixed'): Promise<Side> {
      const cpu0 = { p: await clusterCpu(pids.primary), r: await clusterCpu(pids.replica) };
      const per = Math.max(1, Math.round(s.connections / instances.length));
      const results = await Promise.all(
        instances.map((inst) =>
          runLoad<LoadResult & { served: number }>({
            url: inst.url,
            token,
            scenario,
            seeded: s.seeded,
            connections: per,
            warmupSeconds: s.warmup,
            seconds: s.seconds,
          }),
        ),
      );
      const cpu = {
        p: (await clusterCpu(pids.primary)) - cpu0.p,
        r: (await clusterCpu(pids.replica)) - cpu0.r,
      };
      const served = results.reduce((n, r) => n + r.served, 0);
      const sum = (k: 'requests' | 'rps' | 'errors' | 'non2xx' | 'timeouts') =>
        results.reduce((n, r) => n + r[k], 0);
      return {
        served,
        requests: sum('requests'),
        rps: sum('rps'),
        errors: sum('errors'),
        non2xx: sum('non2xx'),
        timeouts: sum('timeouts'),
        p50: Math.max(...results.map((r) => r.p50)),
        p99: Math.max(...results.map((r) => r.p99)),
        primaryCpuUsPerReq: Math.round((cpu.p * 1000) / Math.max(1, served)),
        replicaCpuUsPerReq: Math.round((cpu.r * 1000) / Math.max(1, served)),
      };
    }

    const out: Record<string, unknown> = {};
    for (const scenario of ['read', 'mixed'] as const) {
      const pairs = [];
      const lags: number[] = [];
      let replicaReads = 0;
      let primaryReads = 0;
      let overruled = 0;
      for (let i = 0; i < s.pairs; i++) {
        const primaryOnly = await run(plain, scenario);
        s.log(`  replica ${scenario} pair ${i + 1} primary only: ${JSON.stringify(primaryOnly)}`);
        const counts = async () => ({
          replica: (
            await Promise.all(
              withReplica.map((x) =>
                metric(
                  x.url,
                  new RegExp(`^db_reads_total\\{pool="${replicaName.replace(/\./g, '\\.')}"\\} (\\d+)`, 'm'),
                ),
              ),
            )
          ).reduce((a, b) => a + b, 0),
          primary: (
            await Promise.all(
              withReplica.map((x) => metric(x.url, /^db_reads_total\{pool="primary"\} (\d+)/m)),
            )
          ).reduce((a, b) => a + b, 0),
          overruled: (
            await Promise.all(
              withReplica.map((x) => metric(x.url, /^db_replica_reads_overruled_total (\d+)/m)),
            )
          ).reduce((a, b) => a + b, 0),
        });
        const c0 = await counts();
        const sampler = setInterval(() => {
          fetch(`${withReplica[0]!.url}/ready`)
            .then((r) => r.json() as Promise<{ replicas?: { lagMs: number | null }[] }>)
            .then((b) => {
              const lag = b.replicas?.[0]?.lagMs;
              if (typeof lag === 'number') lags.push(lag);
            })
            .catch(() => {});
        }, 250);
        const replica = await run(withReplica, scenario);
        clearInterval(sampler);
        const c1 = await counts();
        replicaReads += c1.replica - c0.replica;
        primaryReads += c1.primary - c0.primary;
        overruled += c1.overruled - c0.overruled;
        s.log(`  replica ${scenario} pair ${i + 1} with replica: ${JSON.stringify(replica)}`);
        pairs.push({ primaryOnly, replica, throughput: r2(replica.rps / Math.max(1, primaryOnly.rps)) });
      }
      out[scenario] = {
        pairs,
        median: {
          throughput: r2(median(pairs.map((p) => p.throughput))),
          primaryOnlyRps: Math.round(median(pairs.map((p) => p.primaryOnly.rps))),
          replicaRps: Math.round(median(pairs.map((p) => p.replica.rps))),
          primaryCpuUsPerReq: {
            primaryOnly: Math.round(median(pairs.map((p) => p.primaryOnly.primaryCpuUsPerReq))),
            withReplica: Math.round(median(pairs.map((p) => p.replica.primaryCpuUsPerReq))),
          },
          replicaCpuUsPerReq: Math.round(median(pairs.map((p) => p.replica.replicaCpuUsPerReq))),
        },
        replicaShare: r2(replicaReads / Math.max(1, replicaReads + primaryReads)),
        overruled,
        lagMs: { samples: lags.length, median: median(lags), max: lags.length ? Math.max(...lags) : null },
      };
    }
    return out;
  } finally {
    await topo.stop();
  }
}

export function renderReplica(
  label: string,
  r: Record<string, unknown>,
  connections: number,
  seconds: number,
) {
  const lines = [
    `## Read replicas: three instances, primary only vs primary + one replica (${label}, ${new Date().toISOString().slice(0, 16)}Z)`,
    '',
    `${connections} connections split over three instances, ${seconds} s per side, alternating pairs; the ratio is the median of the per-pair ratios (with replica / primary only).`,
    '',
    '| scenario | throughput ratio | primary only req/s | with replica req/s | replica share of reads | overruled | primary PG CPU / req (alone, with replica) | replica PG CPU / req | replica lag ms (median, max) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [scenario, v] of Object.entries(r)) {
    const x = v as {
      median: {
        throughput: number;
        primaryOnlyRps: number;
        replicaRps: number;
        primaryCpuUsPerReq: { primaryOnly: number; withReplica: number };
        replicaCpuUsPerReq: number;
      };
      replicaShare: number;
      overruled: number;
      lagMs: { median: number; max: number | null };
    };
    const m = x.median;
    lines.push(
      `| ${scenario} | ${m.throughput} x | ${m.primaryOnlyRps} | ${m.replicaRps} | ${Math.round(x.replicaShare * 100)} % | ${x.overruled} | ${m.primaryCpuUsPerReq.primaryOnly} µs, ${m.primaryCpuUsPerReq.withReplica} µs | ${m.replicaCpuUsPerReq} µs | ${x.lagMs.median}, ${x.lagMs.max ?? 'n/a'} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
