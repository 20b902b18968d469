import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Issue 26: what change events cost writes, and how soon a webhook arrives. Three service
 * instances on their own seeded databases (no subscription; one not delivering; one with a
 * webhook subscription to a receiver in a child process); the `update` scenario runs on each in turn
 * (pairs, alternating), and the ratio of their rates is reported per pair and as a median.
 * The delay is taken at the receiver: arrival time minus the event's timestamp (set when
 * the event row is inserted, just before its transaction commits), under the saturating
 * load and then under a light one (sequential writes).
 */

export type EventsKind = 'none' | 'fanout' | 'one';

/** One instance's measured window. CPU figures: microseconds per write served (warm-up included). */
export interface EventsWindow {
  rps: number;
  p99: number;
  served: number;
  /** Service process CPU (user + system) per write. */
  serviceCpuUs: number;
  /** Its kernel share. */
  serviceSysUs: number;
  /** PostgreSQL backends' CPU per write (their application_name); null for PGlite (in process). */
  pgCpuUs: number | null;
  /** PostgreSQL: rows inserted, updated or deleted in its schema per write. */
  pgRows?: number | null;
  /** The part of pgRows in webhook_deliveries and webhook_attempts. */
  pgWebhookRows?: number | null;
  /** The receiver process's CPU per write: its work, on the same 2 cores. */
  benchCpuUs: number;
  /** `one` only: events written to it and not yet at the receiver when its window closed. */
  backlogAtEnd?: number;
}

export interface EventsPair {
  none: EventsWindow;
  /** One enabled subscription, no delivery on that instance (WEBHOOK_POLL_MS=0). */
  fanout: EventsWindow;
  one: EventsWindow;
  /** one / none, req/s. */
  ratio: number;
  /** fanout / none, req/s. */
  fanoutRatio: number;
  /** Time spent waiting for `one`'s backlog to drain before the other two were measured. */
  drainMs: number;
}

type Cpu = { serviceCpuUs: number | null; pgCpuUs: number | null; benchCpuUs: number | null };

export interface EventsResult {
  pairs: EventsPair[];
  medianRatio: number;
  medianFanoutRatio: number;
  medianCpu: Record<EventsKind, Cpu>;
  /** Webhook delay under the saturating update load (ms). */
  loaded: { count: number; p50: number; p99: number };
  /** Webhook delay for sequential writes (ms). */
  light: { count: number; p50: number; p99: number };
  /**
   * A backlog (the fan-out instance's queued deliveries) sent by a fresh instance with no
   * writes beside it: CPU per event delivered (microseconds; pgUs null for PGlite).
   */
  deliveryCost?: { events: number; serviceUs: number; pgUs: number | null; receiverUs: number; ms: number };
  /** The same for another build (BENCH_DRAIN_BASE), on the first part of the same backlog. */
  deliveryCostBase?: EventsResult['deliveryCost'];
  delivered: number;
}

/**
 * The receiver in a child process (bench/targets/webhook-receiver.mjs): a bare server
 * answering 204 that notes each event's delay. `delays` fills in batches (every 100 ms);
 * `sync` brings it up to date. Its CPU is the child's (`pid`), not the bench process's.
 */
export function startBenchReceiver() {
  const delays: number[] = [];
  const child = fork(fileURLToPath(new URL('./targets/webhook-receiver.mjs', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  let flushed: (() => void) | undefined;
  let listening: ((port: number) => void) | undefined;
  child.on('message', (m: { kind: string; delays?: number[]; port?: number }) => {
    if (m.delays) for (const d of m.delays) delays.push(d);
    if (m.kind === 'flushed') flushed?.();
    if (m.kind === 'listening') listening?.(m.port!);
  });
  return {
    delays,
    pid: child.pid!,
    async listen(): Promise<string> {
      const port = await new Promise<number>((resolve) => {
        listening = resolve;
      });
      return `http://127.0.0.1:${port}/hook`;
    },
    /** Every delay the child has noted so far is in `delays`. */
    sync: () =>
      new Promise<void>((resolve) => {
        flushed = resolve;
        child.send('flush');
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}

export function percentiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0);
  return { count: s.length, p50: Math.round(at(0.5)), p99: Math.round(at(0.99)) };
}

export function renderEvents(label: string, all: Record<string, EventsResult>): string {
  const lines = [
    `### Change events (${label}): update throughput with one webhook subscription vs none, same run`,
    '',
    'none: no subscription; fan-out: one enabled subscription, no delivery on that instance',
    '(WEBHOOK_POLL_MS=0); one: the same, delivering. `none` and `fan-out` are measured only after',
    "`one`'s backlog has drained. CPU: microseconds per write (service process / PostgreSQL",
    'backends / receiver process).',
    '',
    '| backend | pair | none req/s | one subscription req/s | ratio | p99 none / one (ms) | fan-out req/s | fan-out ratio | service CPU/write none / fan-out / one (us) | PG CPU/write none / fan-out / one (us) | receiver CPU/write (us) | backlog after one | drain (ms) | PG rows/write none / fan-out / one | of which webhook tables |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const pg = (x: number | null) => (x === null ? 'in process' : String(x));
  for (const [b, r] of Object.entries(all)) {
    r.pairs.forEach((p, i) => {
      lines.push(
        `| ${b} | ${i + 1} | ${p.none.rps} | ${p.one.rps} | ${p.ratio} | ${p.none.p99} / ${p.one.p99} | ${p.fanout.rps} | ${p.fanoutRatio} | ${p.none.serviceCpuUs} / ${p.fanout.serviceCpuUs} / ${p.one.serviceCpuUs} | ${pg(p.none.pgCpuUs)} / ${pg(p.fanout.pgCpuUs)} / ${pg(p.one.pgCpuUs)} | ${p.one.benchCpuUs} | ${p.one.backlogAtEnd ?? ''} | ${p.drainMs} | ${p.none.pgRows ?? ''} / ${p.fanout.pgRows ?? ''} / ${p.one.pgRows ?? ''} | ${p.none.pgWebhookRows ?? ''} / ${p.fanout.pgWebhookRows ?? ''} / ${p.one.pgWebhookRows ?? ''} |`,
      );
    });
    const c = r.medianCpu;
    lines.push(
      `| ${b} | **median** | | | **${r.medianRatio}** | | | **${r.medianFanoutRatio}** | ${c.none.serviceCpuUs} / ${c.fanout.serviceCpuUs} / ${c.one.serviceCpuUs} | ${c.none.pgCpuUs ?? 'in process'} / ${c.fanout.pgCpuUs ?? 'in process'} / ${c.one.pgCpuUs ?? 'in process'} | ${c.one.benchCpuUs} | | | | |`,
    );
  }
  lines.push(
    '',
    '| backend | delay under load p50 / p99 (ms, n) | delay, sequential writes p50 / p99 (ms, n) |',
    '| --- | --- | --- |',
  );
  for (const [b, r] of Object.entries(all))
    lines.push(
      `| ${b} | ${r.loaded.p50} / ${r.loaded.p99} (${r.loaded.count}) | ${r.light.p50} / ${r.light.p99} (${r.light.count}) |`,
    );
  lines.push(
    '',
    "Delivery alone (the fan-out instance's queued deliveries sent by a fresh instance, no writes beside it), CPU per event delivered:",
    '',
    '| backend | build | events | service (us) | PostgreSQL (us) | receiver (us) | wall (ms) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [b, r] of Object.entries(all))
    for (const [build, c] of [
      ['base (BENCH_DRAIN_BASE)', r.deliveryCostBase],
      ['this', r.deliveryCost],
    ] as const)
      if (c)
        lines.push(
          `| ${b} | ${build} | ${c.events} | ${c.serviceUs} | ${c.pgUs ?? 'in process'} | ${c.receiverUs} | ${c.ms} |`,
        );
  return `${lines.join('\n')}\n`;
}
