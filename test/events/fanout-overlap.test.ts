import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * Fan-out batches overlap under one lease (src/events/dispatcher.ts `leasedRun`): once every
 * key of a full batch is being sent, the next batch is read and sends while the one before
 * is still open, and a key of the next batch that the one before is still sending waits for
 * its outcome there. No clock decides anything here: a batch's settle waits for its held
 * request (WEBHOOK_SETTLE_AFTER_MS and the attempt's timeout are far beyond the test), so the
 * first batch stays open, unwritten, until the test answers that request.
 *
 * The first batch reads 512 events (the room to send: 512 in flight at most), so: APP_X v1
 * and 511 imported keys are the first batch; APP_X v2 and 100 more keys the second.
 */
const env = {
  AUDIT_SEAL_INTERVAL_MS: '0',
  ...deliversToReceiver,
  WEBHOOK_TIMEOUT_MS: '60000',
  WEBHOOK_SETTLE_AFTER_MS: '60000',
  WEBHOOK_RETRY_BASE_MS: '60000',
  WEBHOOK_RETRY_MAX_MS: '60000',
};

describe('overlapping fan-out batches', () => {
  const t = useTestApp({ env, resetEachTest: true });
  const admin = api(t, 'alice');

  const rows = () =>
    t.db.query<{ key: string; status: string; attempts: number; response: number | null }>(
      `SELECT d.key, d.status, d.attempts, d.response_status AS response
       FROM webhook_deliveries d ORDER BY d.event_seq, d.id`,
    );

  async function importKeys(prefix: string, n: number) {
    const res = await admin.req('POST', '/api/secrets/batch', {
      secrets: Array.from({ length: n }, (_, i) => ({ key: `${prefix}_${i}`, value: secretValue() })),
    });
    expect(res.statusCode, res.body).toBe(200);
  }

  /**
   * Writes the two batches' events with APP_X v1 held by the receiver, starts a round, and
   * waits until every other event has arrived: the second batch's 100 keys among them.
   */
  async function secondBatchSentWhileFirstOpen(): Promise<{ r: Receiver; round: Promise<void> }> {
    const r = await startReceiver();
    await subscribeReceiver(admin, r);
    r.holdKeys.add('APP_X');
    expect((await admin.create({ key: 'APP_X', value: secretValue() })).statusCode).toBe(201);
    await importKeys('FIRST', 511);
    expect((await admin.update('APP_X', { value: secretValue() })).statusCode).toBe(200);
    await importKeys('SECOND', 100);

    const round = t.app.webhookDispatcher.deliverNow();
    await r.held();
    await r.waitFor(611);
    // The second batch went out while the first is open: nothing is written yet (the first
    // settles only once APP_X v1 is answered, and batches settle in order).
    expect(r.received.filter((x) => String(x.body.data.key).startsWith('SECOND_'))).toHaveLength(100);
    expect(await rows()).toEqual([]);
    // APP_X v2 waits for v1's outcome: not sent while v1 is in flight (v1 is the one held).
    expect(r.received.filter((x) => x.body.data.key === 'APP_X')).toEqual([]);
    expect(r.holding()).toBe(1);
    return { r, round };
  }

  it('reads and sends the next batch while the one before is open; a key in both is sent in order', async () => {
    const { r, round } = await secondBatchSentWhileFirstOpen();
    try {
      r.holdKeys.clear();
      r.release();
      await round;
      await t.app.webhookDispatcher.idle();
      const x = r.received.filter((d) => d.body.data.key === 'APP_X').map((d) => d.body.data.version);
      expect(x).toEqual([1, 2]);
      expect(r.received).toHaveLength(613);
      expect(new Set(r.received.map((d) => d.id)).size).toBe(613);
      const all = await rows();
      expect(all).toHaveLength(613);
      expect(all.every((d) => d.status === 'delivered' && d.attempts === 1 && d.response === 204)).toBe(true);
    } finally {
      r.release();
      await r.close();
    }
  });

  it('a key whose earlier event fails in the batch before is not sent; it waits behind the retry', async () => {
    const { r, round } = await secondBatchSentWhileFirstOpen();
    try {
      r.refuseKeys.add('APP_X');
      r.release();
      await round;
      await t.app.webhookDispatcher.idle();
      expect(r.received.filter((d) => d.body.data.key === 'APP_X')).toEqual([]);
      expect(r.refused).toBe(1);
      const all = await rows();
      expect(all).toHaveLength(613);
      expect(all.filter((d) => d.key === 'APP_X')).toEqual([
        { key: 'APP_X', status: 'pending', attempts: 1, response: 503 },
        { key: 'APP_X', status: 'pending', attempts: 0, response: null },
      ]);
      expect(all.filter((d) => d.key !== 'APP_X').every((d) => d.status === 'delivered')).toBe(true);
    } finally {
      r.release();
      await r.close();
    }
  });
});
