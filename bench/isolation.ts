import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import type { HostileResult, HostileSpec } from './hostile.js';
import type { LoadResult } from './load.js';
import { ROOT, runLoad } from './procs.js';

/**
 * Issue 21: what hostile and heavy callers cost a benign one. The benign caller runs the
 * `mixed` scenario (90 % reads, 10 % updates) alone, then again while other identities send
 * NUL keys without or with a bad token, audit filters with NUL, 1000-name renders of missing
 * secrets, 1000-entry dry-run imports, 2 MB bodies and trickled bodies, in turns (quiet,
 * loaded, quiet, loaded, ...). It reports the benign p99 under load against its own quiet p99
 * of the same run, and every benign failure (the noisy-neighbour test asserts there are none;
 * the ratio lives here, not in a timed test).
 */

export interface IsolationPair {
  quiet: LoadResult;
  loaded: LoadResult;
  /** Hostile requests answered, by kind and status (`render 429`), and socket errors. */
  hostile: Record<string, number>;
  /** Benign p99 under hostile load / benign p99 alone. */
  p99Ratio: number;
  /** CPU time each party used in the quiet and the loaded window (when probed). */
  cpu?: { quiet: WindowCpu; loaded: WindowCpu };
  /** The machine's 1-minute load average as the pair began. */
  load?: number;
}

export interface IsolationResult {
  pairs: IsolationPair[];
  medianP99Ratio: number;
  benignFailuresUnderLoad: number;
  /** Service CPU per hostile request, by kind (hostileCosts), when measured. */
  costs?: KindCost[];
}

/** CPU time (ms) each party used in one window: who took the 2 cores. */
export interface WindowCpu {
  /** The service process. */
  service: number;
  /** Its PostgreSQL backends (null on PGlite: in the service's process). */
  postgres: number | null;
  /** The benign load generator. */
  benign: number;
  /** The hostile callers' process (loaded windows only). */
  hostile?: number;
}

/** CPU used so far by the service and its PostgreSQL backends, ms (run.ts reads /proc). */
export type CpuProbe = () => Promise<{ service: number; postgres: number | null }>;

/** The hostile callers' process (bench/hostile.ts): resolves once it printed `ready`. */
function spawnHostile(spec: HostileSpec): Promise<{ signal(): void; result: Promise<HostileResult> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/hostile.ts', JSON.stringify(spec)], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const result = exited.then((code) => {
    if (code !== 0) throw new Error(`hostile callers exited with ${code}`);
    return JSON.parse(out.trim().split('\n').pop() ?? '') as HostileResult;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    result.catch(reject);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) resolve({ signal: () => child.stdin.end('go\n'), result });
    });
  });
}

/** ISOLATION_KINDS=batch,render (name prefixes) narrows the hostile mix, to see which kind costs what. */
const onlyKinds = () => process.env.ISOLATION_KINDS?.split(',').filter(Boolean);
/** ISOLATION_HOSTILE_CLIENT=fetch: the hostile callers use Node's fetch (the heavier client used before). */
const hostileClient = () => (process.env.ISOLATION_HOSTILE_CLIENT === 'fetch' ? 'fetch' : 'http');

/** The hostile callers, flat out until stopped. */
async function startHostile(url: string, hostileToken: string) {
  const h = await spawnHostile({ url, token: hostileToken, only: onlyKinds(), client: hostileClient() });
  return {
    stop(): Promise<HostileResult> {
      h.signal();
      return h.result;
    },
  };
}

export const HOSTILE_KINDS = [
  'nul key, no token',
  'nul key, bad token',
  'audit filter nul',
  'render 1000 missing',
  'batch 1000 dry run',
  '2 MB body',
] as const;

/** What one hostile request of each kind costs, CPU microseconds per request. */
export interface KindCost {
  kind: string;
  requests: number;
  /** Statuses answered, e.g. `400: 190, 429: 10`. */
  statuses: string;
  serviceUs: number;
  postgresUs: number | null;
  clientUs: number;
}

/**
 * The CPU one hostile request of each kind costs the service (and its PostgreSQL backends),
 * and its own client: `amount` requests of one kind at a time, one in flight. CPU per request
 * hardly moves with the machine's load, where latency ratios do.
 */
export async function hostileCosts(opts: {
  url: string;
  hostileToken: string;
  cpu: CpuProbe;
  amount: number;
  /** Some kinds only (names as in HOSTILE_KINDS); all when absent or empty. */
  kinds?: readonly string[];
}): Promise<KindCost[]> {
  const out: KindCost[] = [];
  for (const kind of opts.kinds?.length ? opts.kinds : HOSTILE_KINDS) {
    const h = await spawnHostile({
      url: opts.url,
      token: opts.hostileToken,
      only: [kind],
      amount: opts.amount,
    });
    const a = await opts.cpu();
    h.signal();
    const r = await h.result;
    const b = await opts.cpu();
    const n = Math.max(
      1,
      Object.values(r.counts).reduce((x, y) => x + y, 0),
    );
    out.push({
      kind,
      requests: n,
      statuses: Object.entries(r.counts)
        .map(([k, c]) => `${k.slice(kind.length + 1)}: ${c}`)
        .join(', '),
      serviceUs: Math.round(((b.service - a.service) * 1000) / n),
      postgresUs:
        a.postgres === null || b.postgres === null
          ? null
          : Math.round(((b.postgres - a.postgres) * 1000) / n),
      clientUs: Math.round((r.cpuMs * 1000) / n),
    });
  }
  return out;
}

export async function isolationBench(opts: {
  url: string;
  token: string;
  hostileToken: string;
  seeded: number;
  connections: number;
  seconds: number;
  amount?: number | undefined;
  pairs: number;
  log: (s: string) => void;
  cpu?: CpuProbe | undefined;
}): Promise<IsolationResult> {
  const spec = {
    scenario: 'mixed' as const,
    seeded: opts.seeded,
    connections: opts.connections,
    warmupSeconds: 0,
    seconds: opts.seconds,
    ...(opts.amount ? { requests: opts.amount } : {}),
    url: opts.url,
    token: opts.token,
  };
  const pairs: IsolationPair[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    const load = Math.round(loadavg()[0]! * 10) / 10;
    const c0 = await opts.cpu?.();
    const quiet = await runLoad<LoadResult>(spec);
    const c1 = await opts.cpu?.();
    const hostile = await startHostile(opts.url, opts.hostileToken);
    const c2 = await opts.cpu?.();
    const loaded = await runLoad<LoadResult>(spec);
    const c3 = await opts.cpu?.();
    const { counts, cpuMs: hostileCpu } = await hostile.stop();
    const p99Ratio = Math.round((loaded.p99 / Math.max(1, quiet.p99)) * 100) / 100;
    const windowCpu = (
      a: Awaited<ReturnType<CpuProbe>>,
      b: Awaited<ReturnType<CpuProbe>>,
      load: LoadResult,
    ): WindowCpu => ({
      service: Math.round(b.service - a.service),
      postgres: a.postgres === null || b.postgres === null ? null : Math.round(b.postgres - a.postgres),
      benign: load.cpuMs ?? 0,
    });
    const cpu =
      c0 && c1 && c2 && c3
        ? { quiet: windowCpu(c0, c1, quiet), loaded: { ...windowCpu(c2, c3, loaded), hostile: hostileCpu } }
        : undefined;
    pairs.push({ quiet, loaded, hostile: counts, p99Ratio, load, ...(cpu ? { cpu } : {}) });
    const split = (w: WindowCpu) =>
      `service ${w.service}${w.postgres === null ? '' : `, PostgreSQL ${w.postgres}`}, benign client ${w.benign}${w.hostile === undefined ? '' : `, hostile client ${w.hostile}`}`;
    opts.log(
      `  isolation pair ${i + 1} (load ${load}): benign p99 ${quiet.p99} ms alone, ${loaded.p99} ms beside hostile load (x${p99Ratio}); benign failures ${loaded.errors + loaded.non2xx + loaded.timeouts}` +
        (cpu
          ? `; CPU ms alone: ${split(cpu.quiet)}; beside: ${split(cpu.loaded)} (hostile client: whole run)`
          : ''),
    );
  }
  const ratios = pairs.map((p) => p.p99Ratio).sort((a, b) => a - b);
  return {
    pairs,
    medianP99Ratio: ratios[Math.floor(ratios.length / 2)] ?? 0,
    benignFailuresUnderLoad: pairs.reduce(
      (n, p) => n + p.loaded.errors + p.loaded.non2xx + p.loaded.timeouts,
      0,
    ),
  };
}

export function renderIsolation(
  label: string,
  all: Record<string, IsolationResult>,
  connections: number,
): string {
  const lines = [
    `### Benign caller beside hostile and heavy callers (${label})`,
    '',
    `The benign caller: \`mixed\` (90 % reads, 10 % updates), ${connections} connections; alone, then beside`,
    'hostile traffic from other identities (NUL keys, bad tokens, 1000-name renders, 1000-entry dry-run',
    'imports, 2 MB bodies, trickled bodies), in turns. Ratio: benign p99 under load / benign p99 alone.',
    'The benign and the hostile callers are processes of their own; CPU: seconds of CPU time each',
    'party used in the window (service / its PostgreSQL backends / benign client / hostile client).',
    '',
    '| backend | pair | load | benign req/s alone | beside hostile | p99 alone ms | p99 beside ms | p99 ratio | benign failures | CPU s alone | CPU s beside |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|',
  ];
  const s1 = (ms: number | null | undefined) =>
    ms === null || ms === undefined ? '-' : (ms / 1000).toFixed(1);
  const split = (w: WindowCpu | undefined) =>
    w
      ? [w.service, w.postgres, w.benign, ...(w.hostile === undefined ? [] : [w.hostile])].map(s1).join(' / ')
      : '';
  for (const [backend, r] of Object.entries(all)) {
    r.pairs.forEach((p, i) => {
      const failures = p.loaded.errors + p.loaded.non2xx + p.loaded.timeouts;
      lines.push(
        `| ${backend} | ${i + 1} | ${p.load ?? ''} | ${p.quiet.rps} | ${p.loaded.rps} | ${p.quiet.p99} | ${p.loaded.p99} | ${p.p99Ratio} | ${failures} | ${split(p.cpu?.quiet)} | ${split(p.cpu?.loaded)} |`,
      );
    });
    lines.push(
      `| ${backend} | median | | | | | | **${r.medianP99Ratio}** | ${r.benignFailuresUnderLoad} | | |`,
    );
  }
  const withCosts = Object.entries(all).filter(([, r]) => r.costs?.length);
  if (withCosts.length > 0) {
    lines.push(
      '',
      'CPU per request, microseconds: one kind at a time, one request in flight (service / its PostgreSQL',
      "backends / the caller's own client). The benign request for scale: service CPU in its quiet windows",
      'over the requests served.',
      '',
      '| backend | kind | requests | answered | service us | PostgreSQL us | client us |',
      '|---|---|--:|---|--:|--:|--:|',
    );
    for (const [backend, r] of withCosts) {
      const quiet = r.pairs.filter((p) => p.cpu);
      const served = quiet.reduce((n, p) => n + p.quiet.requests, 0);
      if (served > 0) {
        const us = (f: (p: IsolationPair) => number | null) =>
          Math.round((quiet.reduce((n, p) => n + (f(p) ?? 0), 0) * 1000) / served);
        lines.push(
          `| ${backend} | benign \`mixed\` (for scale) | ${served} | 2xx | ${us((p) => p.cpu!.quiet.service)} | ${quiet[0]!.cpu!.quiet.postgres === null ? '-' : us((p) => p.cpu!.quiet.postgres)} | ${us((p) => p.cpu!.quiet.benign)} |`,
        );
      }
      for (const c of r.costs!)
        lines.push(
          `| ${backend} | ${c.kind} | ${c.requests} | ${c.statuses} | ${c.serviceUs} | ${c.postgresUs ?? '-'} | ${c.clientUs} |`,
        );
    }
  }
  lines.push('', 'Hostile requests answered (last pair of each backend):', '');
  for (const [backend, r] of Object.entries(all)) {
    const last = r.pairs[r.pairs.length - 1];
    if (!last) continue;
    const parts = Object.entries(last.hostile)
      .sort()
      .map(([k, n]) => `${k}: ${n}`);
    lines.push(`- ${backend}: ${parts.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
