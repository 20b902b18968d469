import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { deliversToReceiver } from '../helpers/webhook-receiver.js';

/**
 * The retention sweep: events older than EVENTS_RETENTION_DAYS go, with their finished
 * deliveries (migrations/010: a statement trigger in place of the foreign key's cascade),
 * unless a delivery still waits for them; newer events stay.
 */
const t = useTestApp({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    ...deliversToReceiver,
    EVENTS_RETENTION_DAYS: '7',
  },
});
const admin = api(t, 'alice');

it('prunes old events and their finished deliveries, keeps pending ones and recent events', async () => {
  const sub = await admin.req('POST', '/api/webhooks', { url: 'http://127.0.0.1:9/hook' });
  expect(sub.statusCode, sub.body).toBe(201);
  const id = sub.json().id as string;
  // Five old events (30 days), then two recent ones; the fan-out queues a delivery for each.
  await t.db.query(
    `INSERT INTO change_events (type, key, actor, at)
     SELECT 'secret.updated', 'PRUNE_' || n, 'test', now() - interval '30 days' + n * interval '1 second'
     FROM generate_series(1, 5) n`,
  );
  await t.db.query(
    `INSERT INTO change_events (type, key, actor) SELECT 'secret.updated', 'KEEP_' || n, 'test'
     FROM generate_series(1, 2) n`,
  );
  await t.app.webhookDispatcher.fanOut();
  // The old ones were delivered, except PRUNE_3, which still waits.
  await t.db.query(
    `UPDATE webhook_deliveries SET status = 'delivered', done_at = now()
     WHERE key LIKE 'PRUNE_%' AND key <> 'PRUNE_3'`,
  );
  await t.app.webhookDispatcher.sweep();
  const events = await t.db.query<{ key: string }>(`SELECT key FROM change_events ORDER BY seq`);
  expect(events.map((e) => e.key)).toEqual(['PRUNE_3', 'KEEP_1', 'KEEP_2']);
  const deliveries = await t.db.query<{ key: string; subscription_id: string }>(
    `SELECT key, subscription_id FROM webhook_deliveries ORDER BY id`,
  );
  expect(deliveries).toEqual(['PRUNE_3', 'KEEP_1', 'KEEP_2'].map((key) => ({ key, subscription_id: id })));

  // Deleting the subscription deletes its deliveries (the other statement trigger).
  expect((await admin.req('DELETE', `/api/webhooks/${id}`)).statusCode).toBe(200);
  expect(await t.db.query(`SELECT 1 FROM webhook_deliveries`)).toEqual([]);
});
