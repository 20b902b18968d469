import { afterEach, expect, it } from 'vitest';
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
 * The fan-out inserts fresh deliveries already claimed by the instance that fans out
 * (src/events/repository.ts `fanOut` with a lease) and sends them at once, except an event
 * whose (subscription, key) still has an earlier delivery pending: that one is queued plain,
 * and the claim's order check holds it back until the earlier one is done. Retries here are
 * a minute away, so a failed delivery stays pending and not due for the whole test.
 */
const t = useTestApp({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    ...deliversToReceiver,
    WEBHOOK_RETRY_BASE_MS: '60000',
    WEBHOOK_RETRY_MAX_MS: '60000',
  },
  resetEachTest: true,
});
const admin = api(t, 'alice');

let r: Receiver | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const rows = () =>
  t.db.query<{ key: string; status: string; attempts: number; leased: boolean }>(
    `SELECT d.key, d.status, d.attempts, d.lease_until IS NOT NULL AS leased
     FROM webhook_deliveries d ORDER BY d.event_seq, d.id`,
  );

async function round() {
  await t.app.webhookDispatcher.deliverNow();
  await t.app.webhookDispatcher.idle();
}

const versions = (key: string) =>
  r!.received.filter((x) => x.body.data.key === key).map((x) => x.body.data.version);

it('an earlier failed delivery of a key holds its later events back; other keys flow', async () => {
  r = await startReceiver();
  await subscribeReceiver(admin, r);
  r.refuseKeys.add('APP_K');

  expect((await admin.create({ key: 'APP_K', value: secretValue() })).statusCode).toBe(201);
  expect((await admin.create({ key: 'APP_L', value: secretValue() })).statusCode).toBe(201);
  await round();
  // Both went out in their first round; APP_K's was refused and waits for its retry.
  expect(r.refused).toBe(1);
  expect(versions('APP_L')).toEqual([1]);
  expect(await rows()).toEqual([
    { key: 'APP_K', status: 'pending', attempts: 1, leased: false },
    { key: 'APP_L', status: 'delivered', attempts: 1, leased: false },
  ]);

  expect((await admin.update('APP_K', { value: secretValue() })).statusCode).toBe(200);
  expect((await admin.update('APP_L', { value: secretValue() })).statusCode).toBe(200);
  await round();
  await round();
  // APP_L's next event went out; APP_K's is queued unclaimed behind the pending first one.
  expect(versions('APP_L')).toEqual([1, 2]);
  expect(versions('APP_K')).toEqual([]);
  expect(r.refused).toBe(1);
  expect(await rows()).toEqual([
    { key: 'APP_K', status: 'pending', attempts: 1, leased: false },
    { key: 'APP_L', status: 'delivered', attempts: 1, leased: false },
    { key: 'APP_K', status: 'pending', attempts: 0, leased: false },
    { key: 'APP_L', status: 'delivered', attempts: 1, leased: false },
  ]);

  // The receiver takes APP_K again and its retry is due: both go out, in order.
  r.refuseKeys.clear();
  await t.db.query(`UPDATE webhook_deliveries SET next_at = now() WHERE status = 'pending'`);
  await round();
  await round();
  expect(versions('APP_K')).toEqual([1, 2]);
  expect((await rows()).map((d) => [d.key, d.status, d.attempts])).toEqual([
    ['APP_K', 'delivered', 2],
    ['APP_L', 'delivered', 1],
    ['APP_K', 'delivered', 1],
    ['APP_L', 'delivered', 1],
  ]);
});
