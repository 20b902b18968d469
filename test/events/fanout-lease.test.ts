import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventsRepository } from '../../src/events/repository.js';
import { createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * A fresh event is sent by the instance holding the fan-out cursor's lease before its
 * delivery row exists, and the row is inserted once, with its outcome, as the cursor moves
 * (src/events/repository.ts `takeFanOut`, `readFanOut`, `settleFanOut`). The lease is driven
 * here by SQL (no clock in the test): a lease that has not run out keeps every other
 * instance from sending the batch; once it has, the batch is sent again and nothing is lost.
 */
const env = {
  AUDIT_SEAL_INTERVAL_MS: '0',
  ...deliversToReceiver,
  WEBHOOK_RETRY_BASE_MS: '60000',
  WEBHOOK_RETRY_MAX_MS: '60000',
};
const repo = new EventsRepository();

let r: Receiver | undefined;
afterEach(async () => {
  r?.release();
  await r?.close();
  r = undefined;
});

async function round(t: TestApp) {
  await t.app.webhookDispatcher.deliverNow();
  await t.app.webhookDispatcher.idle();
}

/**
 * Rounds until `done` (at most 20): on a slow machine a batch may settle before all of its
 * requests went out (after a second), and the rest goes through a claim in the next round.
 */
async function roundsUntil(t: TestApp, done: () => boolean) {
  for (let i = 0; i < 20; i++) {
    await round(t);
    if (done()) return;
  }
}

const rows = (t: TestApp) =>
  t.db.query<{ key: string; status: string; attempts: number; leased: boolean; response: number | null }>(
    `SELECT d.key, d.status, d.attempts, d.lease_until IS NOT NULL AS leased, d.response_status AS response
     FROM webhook_deliveries d ORDER BY d.event_seq, d.id`,
  );

const versions = (key: string) =>
  r!.received.filter((x) => x.body.data.key === key).map((x) => x.body.data.version);

describe('one instance', () => {
  const t = useTestApp({ env, resetEachTest: true });
  const admin = api(t, 'alice');

  async function subscribe() {
    r = await startReceiver();
    return (await subscribeReceiver(admin, r)).id;
  }

  it('inserts a delivered event once, with its outcome, and moves the cursor in the same statement', async () => {
    const id = await subscribe();
    expect((await admin.create({ key: 'APP_A', value: secretValue() })).statusCode).toBe(201);
    expect((await admin.update('APP_A', { value: secretValue() })).statusCode).toBe(200);
    await roundsUntil(t, () => versions('APP_A').length === 2);
    expect(versions('APP_A')).toEqual([1, 2]);
    expect(await rows(t)).toEqual([
      { key: 'APP_A', status: 'delivered', attempts: 1, leased: false, response: 204 },
      { key: 'APP_A', status: 'delivered', attempts: 1, leased: false, response: 204 },
    ]);
    // The delivery log keeps its contract: outcome, latency, attempt.
    const log = await admin.req('GET', `/api/webhooks/${id}/deliveries`);
    expect(log.statusCode).toBe(200);
    const items = log.json().deliveries as { status: string; attempts: number; lastResponseStatus: number }[];
    expect(items.map((d) => [d.status, d.attempts, d.lastResponseStatus])).toEqual([
      ['delivered', 1, 204],
      ['delivered', 1, 204],
    ]);
    const cur = await t.db.query<{ leased: boolean }>(
      `SELECT lease_token IS NOT NULL AS leased FROM event_fanout`,
    );
    expect(cur).toEqual([{ leased: false }]);
    // Nothing is sent twice by later rounds.
    await round(t);
    expect(r!.received.length).toBe(2);
  });

  it('a failed first attempt is inserted pending with its retry and attempt log; later events of the key wait behind it', async () => {
    const id = await subscribe();
    r!.refuseKeys.add('APP_K');
    for (const key of ['APP_K', 'APP_L'])
      expect((await admin.create({ key, value: secretValue() })).statusCode).toBe(201);
    for (const key of ['APP_K', 'APP_L'])
      expect((await admin.update(key, { value: secretValue() })).statusCode).toBe(200);
    await roundsUntil(t, () => versions('APP_L').length === 2);
    // APP_K v1 was tried once and refused; v2 was not sent (it waits behind v1's retry).
    expect(r!.refused).toBe(1);
    expect(versions('APP_L')).toEqual([1, 2]);
    expect(await rows(t)).toEqual([
      { key: 'APP_K', status: 'pending', attempts: 1, leased: false, response: 503 },
      { key: 'APP_L', status: 'delivered', attempts: 1, leased: false, response: 204 },
      { key: 'APP_K', status: 'pending', attempts: 0, leased: false, response: null },
      { key: 'APP_L', status: 'delivered', attempts: 1, leased: false, response: 204 },
    ]);
    const attempts = await t.db.query<{ attempt: number; response_status: number }>(
      `SELECT attempt, response_status FROM webhook_attempts`,
    );
    expect(attempts).toEqual([{ attempt: 1, response_status: 503 }]);
    const sub = await admin.req('GET', `/api/webhooks/${id}`);
    expect(sub.json().consecutiveFailures).toBe(1);

    // A later event of APP_K is not fresh either: queued behind the pending ones.
    expect((await admin.update('APP_K', { value: secretValue() })).statusCode).toBe(200);
    await round(t);
    expect(r!.refused).toBe(1);
    expect(versions('APP_K')).toEqual([]);

    // The receiver takes APP_K again and the retry is due: all three go out, in order.
    r!.refuseKeys.clear();
    await t.db.query(`UPDATE webhook_deliveries SET next_at = now() WHERE status = 'pending'`);
    for (let i = 0; i < 5 && versions('APP_K').length < 3; i++) await round(t);
    expect(versions('APP_K')).toEqual([1, 2, 3]);
    expect((await admin.req('GET', `/api/webhooks/${id}`)).json().consecutiveFailures).toBe(0);
  });

  it('a lease that has not run out keeps the batch from being sent; once it has, the batch is sent, each event once', async () => {
    await subscribe();
    for (const key of ['APP_A', 'APP_B', 'APP_C'])
      expect((await admin.create({ key, value: secretValue() })).statusCode).toBe(201);
    // Another instance took the cursor, read the batch (and may have sent it), and died
    // before it settled.
    const dead = randomUUID();
    const cur = await repo.takeFanOut(t.db, dead, 3_600_000);
    expect(cur).toBeDefined();
    const batch = await repo.readFanOut(t.db, cur!, 1000);
    expect(batch.matches.map((m) => m.event.key)).toEqual(['APP_A', 'APP_B', 'APP_C']);

    await round(t);
    expect(r!.received.length).toBe(0);
    expect(await rows(t)).toEqual([]);

    // Its lease runs out: the next round sends the same events.
    await t.db.query(`UPDATE event_fanout SET lease_until = now() - interval '1 second'`);
    await roundsUntil(t, () => r!.received.length === 3);
    // (Keys go out side by side: their arrival order is not fixed.)
    expect(r!.received.map((x) => x.body.data.key).sort()).toEqual(['APP_A', 'APP_B', 'APP_C']);
    expect(r!.received.map((x) => x.id).sort()).toEqual(batch.matches.map((m) => m.event.id).sort());
    expect((await rows(t)).map((d) => d.status)).toEqual(['delivered', 'delivered', 'delivered']);

    // The dead instance's settle, late, writes nothing: its lease is gone.
    const late = await repo.settleFanOut(
      t.db,
      dead,
      batch.last!,
      batch.matches.map((m) => ({
        sub: m.subscription_id,
        seq: m.event.seq,
        key: m.event.key ?? '',
        outcome: { state: 'delivered', status: 204, latencyMs: 1, error: null, retryMs: null },
      })),
      60_000,
    );
    expect(late.held).toBe(false);
    expect((await rows(t)).length).toBe(3);
  });
});

describe('two instances', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await createTestApp({ env });
    b = await createTestApp({ schema: a.schema!, env: a.env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('a slow receiver: the batch settles with its requests in flight, which no other instance sends meanwhile', async () => {
    r = await startReceiver();
    await subscribeReceiver(api(a), r);
    r.mode = 'hold';
    for (const key of ['APP_A', 'APP_B'])
      expect((await api(a).create({ key, value: secretValue() })).statusCode).toBe(201);
    expect((await api(a).update('APP_A', { value: secretValue() })).statusCode).toBe(200);

    // a's round sends APP_A v1 and APP_B v1 and settles while the receiver holds them: they
    // are inserted pending, leased to a at attempt 1; APP_A v2 (behind v1) waits for a claim.
    await a.app.webhookDispatcher.deliverNow();
    await r.held();
    expect(await rows(a)).toEqual([
      { key: 'APP_A', status: 'pending', attempts: 1, leased: true, response: null },
      { key: 'APP_B', status: 'pending', attempts: 1, leased: true, response: null },
      { key: 'APP_A', status: 'pending', attempts: 0, leased: false, response: null },
    ]);
    // b finds the cursor moved and the deliveries leased: it sends nothing.
    await round(b);
    expect(await rows(a)).toHaveLength(3);

    r.mode = 'up';
    r.release();
    await a.app.webhookDispatcher.idle();
    for (let i = 0; i < 5 && versions('APP_A').length < 2; i++) await round(i % 2 ? a : b);
    expect(versions('APP_A')).toEqual([1, 2]);
    expect(versions('APP_B')).toEqual([1]);
    expect(r.maxConcurrentPerId).toBe(1);
    expect(new Set(r.received.map((x) => x.id)).size).toBe(3);
    expect((await rows(a)).map((d) => [d.status, d.attempts])).toEqual([
      ['delivered', 1],
      ['delivered', 1],
      ['delivered', 1],
    ]);
  });
});
