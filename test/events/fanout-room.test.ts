import { afterEach, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * A receiver that never answers takes only its own subscription's room, never the
 * instance's: a fan-out batch sends a subscription's fresh deliveries only while it has
 * fewer than PER_SUBSCRIPTION (256) in flight here (src/events/dispatcher.ts `startSending`),
 * and a claim takes only what is left of that room. Before that, fresh sends counted only against the
 * instance's MAX_IN_FLIGHT (512): a batch at a time (each settling after a second with its
 * requests still in flight), the silent receiver filled all of it, and every other
 * subscription's deliveries waited for its requests to time out.
 *
 * The dispatcher runs on its own timer; the test waits for conditions only (the test's
 * timeout is the one bound), never for a time or for when a batch settles.
 */
const PER_SUBSCRIPTION = 256;
const MAX_IN_FLIGHT = 512;
/** Requests a fan-out batch has in flight at most. */
const CONCURRENCY = 32;
/** Events only the silent subscription wants, then events both want. */
const EARLY = 4000;
const EVENTS = 1000;

const t = useTestApp({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    ...deliversToReceiver,
    // The dispatcher runs on its own timer here.
    WEBHOOK_POLL_MS: '10',
    // As long as allowed: no request to the silent receiver ends while the test runs, so
    // anything that waited for one would not be done before the test's timeout.
    WEBHOOK_TIMEOUT_MS: '60000',
  },
});
const admin = api(t, 'alice');

const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function subscribe(r: Receiver, body: Record<string, unknown> = {}) {
  return (await subscribeReceiver(admin, r, body)).id;
}

/**
 * `sub`'s deliveries in flight here whose rows exist: sent by a claim, or by a fan-out batch
 * that settled with them in flight (both lease the row to this instance). A running batch's
 * own requests (32 at most) are not counted yet: this is a lower bound, read from the
 * database, whatever the dispatcher counts itself.
 */
async function leased(sub: string) {
  const rows = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM webhook_deliveries
     WHERE subscription_id = $1 AND status = 'pending' AND lease_until > now()`,
    [sub],
  );
  return rows[0]!.n;
}

it('a receiver that never answers holds only its own room: another subscription gets every event meanwhile', async () => {
  const silent = await startReceiver();
  receivers.push(silent);
  silent.mode = 'hold';
  const healthy = await startReceiver();
  receivers.push(healthy);
  const a = await subscribe(silent);
  await subscribe(healthy, { keyPrefixes: ['LATE_'] });

  // One write: first events only the silent subscription wants, then events both want, each
  // with its own key (a batch sends different keys side by side). The fan-out reads them in
  // order, so the healthy subscription's come after the silent one has had its fill.
  await t.db.query(
    `INSERT INTO change_events (type, key, version, actor)
     SELECT 'secret.updated', CASE WHEN n <= $1 THEN 'EARLY_' ELSE 'LATE_' END || n, 1, 'test'
     FROM generate_series(1, $1::int + $2::int) n`,
    [EARLY, EVENTS],
  );
  const ids = (
    await t.db.query<{ id: string }>(`SELECT id::text FROM change_events WHERE key LIKE 'LATE%' ORDER BY seq`)
  ).map((e) => e.id);
  expect(ids).toHaveLength(EVENTS);

  const d = t.app.webhookDispatcher;
  try {
    while (healthy.received.length < EVENTS) {
      const n = await leased(a);
      // With fresh sends outside its room, the silent subscription's held requests grow by a
      // batch's worth each second until they fill the instance, and then nothing else is
      // sent until they time out: caught here, at once, rather than at the test's timeout.
      expect(
        n,
        `the silent subscription holds ${n} deliveries in flight, the whole instance's room ` +
          `(${MAX_IN_FLIGHT}); the healthy one has ${healthy.received.length} of ${EVENTS} events`,
      ).toBeLessThan(MAX_IN_FLIGHT);
      // Nor more than its own room, whichever way they went out (fresh sends, claims).
      expect(n).toBeLessThanOrEqual(PER_SUBSCRIPTION);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Every event once, each verified with the official standardwebhooks package.
    expect(healthy.rejected).toBe(0);
    expect(healthy.received.map((x) => x.id).sort()).toEqual([...ids].sort());
    // ... while the silent receiver still holds its requests: none answered, none timed out.
    await silent.held();
    expect(silent.received).toHaveLength(0);
    expect(d.stats.failed).toBe(0);
    // It did take its room (all but a batch's last requests, CONCURRENCY at most, may still be
    // unsettled), and no more: a claim takes only what is left of a subscription's room.
    const held = await leased(a);
    expect(held).toBeGreaterThan(PER_SUBSCRIPTION - CONCURRENCY);
    expect(held).toBeLessThanOrEqual(PER_SUBSCRIPTION);
  } finally {
    // Answered now, so the dispatcher's stop (and the app's close) waits for no timeout.
    silent.mode = 'up';
    silent.release();
    await d.stop();
  }
});
