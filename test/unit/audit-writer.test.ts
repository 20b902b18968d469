import { expect, it } from 'vitest';
import { createAuditWriter } from '../../src/audit/writer.js';
import type { Database } from '../../src/db/database.js';
import { createLogger } from '../../src/logger.js';
import { readMarks } from '../../src/secrets/read-marks.js';

// Issue 21: a request with more audit rows than a batch holds (an export of many secrets, a
// refused import) is its own statement outside the batch slots, so the small rows of other
// callers never wait behind it. A database whose statements finish only when told to shows
// the order in which they are sent.
it('sends an oversized waiter at once, outside the batch slots, and flush waits for it', async () => {
  const sent: { rows: number; finish: () => void }[] = [];
  const db = {
    kind: 'postgres',
    query: (_text: string, params: unknown[]) =>
      new Promise<never[]>((resolve) => {
        sent.push({ rows: (params[0] as unknown[]).length, finish: () => resolve([]) });
      }),
  } as unknown as Database;
  const writer = createAuditWriter({
    db,
    log: createLogger('silent'),
    windowMs: 0,
    maxRows: 4,
    concurrency: 1,
    marks: readMarks,
  });
  const row = (key: string) => ({
    actor: 'admin:w',
    action: 'secret.read' as const,
    key,
    outcome: 'success' as const,
  });
  const first = writer.record([row('A')]);
  // The one slot is busy with A's batch: B queues behind it.
  const queued = writer.record([row('B')]);
  const big = writer.record(Array.from({ length: 10 }, (_, i) => row(`BIG_${i}`)));
  expect(sent.map((s) => s.rows)).toEqual([1, 10]);
  sent[1]!.finish();
  expect(await big).toBe(true);
  sent[0]!.finish();
  expect(await first).toBe(true);
  await new Promise((r) => setImmediate(r));
  expect(sent.map((s) => s.rows)).toEqual([1, 10, 1]);
  sent[2]!.finish();
  expect(await queued).toBe(true);
  // flush also waits for an oversized statement in flight.
  const late = writer.record(Array.from({ length: 5 }, (_, i) => row(`LATE_${i}`)));
  let flushed = false;
  const flushing = writer.flush().then(() => {
    flushed = true;
  });
  await new Promise((r) => setImmediate(r));
  expect(flushed).toBe(false);
  sent[3]!.finish();
  await flushing;
  expect(await late).toBe(true);
});
