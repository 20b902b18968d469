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

export interface EventsPair {
  none: { rps: number; p99: number };
  one: { rps: number; p99: number };
  ratio: number;
}

export interface EventsResult {
  pairs: EventsPair[];
  medianRatio: number;
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
    '| backend | pair | none req/s | one subscription req/s | ratio | p99 none / one (ms) |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [b, r] of Object.entries(all)) {
    r.pairs.forEach((p, i) => {
      lines.push(
        `| ${b} | ${i + 1} | ${p.none.rps} | ${p.one.rps} | ${p.ratio} | ${p.none.p99} / ${p.one.p99} |`,
      );
    });
    lines.push(`| ${b} | **median** | | | **${r.medianRatio}** | |`);
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
