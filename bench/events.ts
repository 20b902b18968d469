import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Issue 26: what change events cost writes, and how soon a webhook arrives. Two service
 * instances on their own seeded databases, one with no subscription and one with a webhook
 * subscription to a receiver in this process; the `update` scenario runs on each in turn
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
  /** This bench process's CPU per write: the receiver's work, on the same 2 cores. */
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
  delivered: number;
}

export function startBenchReceiver() {
  const delays: number[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c;
    });
    req.on('end', () => {
      const arrived = Date.now();
      try {
        delays.push(arrived - Date.parse((JSON.parse(body) as { timestamp: string }).timestamp));
      } catch {
        // not an event
      }
      res.writeHead(204).end();
    });
  });
  return {
    delays,
    async listen(): Promise<string> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
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
    'backends / bench process = receiver).',
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
  return `${lines.join('\n')}\n`;
}
