import pg from 'pg';
import { expect, it } from 'vitest';
import { backend, testDatabaseUrl, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { deliversToReceiver } from '../helpers/webhook-receiver.js';

/**
 * The fan-out: a writer writes only its event; the dispatcher queues the deliveries later
 * (src/events/repository.ts `fanOut`), for the subscriptions that were enabled when the
 * event was written, and never skips an event that commits after a later one.
 */
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', ...deliversToReceiver },
  resetEachTest: true,
});
const admin = api(t, 'alice');

const queued = () =>
  t.db.query<{ key: string; subscription_id: string }>(
    `SELECT d.key, d.subscription_id FROM webhook_deliveries d ORDER BY d.event_seq, d.id`,
  );

async function subscribe(body: Record<string, unknown> = {}) {
  const res = await admin.req('POST', '/api/webhooks', { url: 'http://127.0.0.1:9/hook', ...body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
}

const create = async (key: string) =>
  expect((await admin.create({ key, value: secretValue() })).statusCode).toBe(201);

it('queues outside the write, only events written while a subscription is enabled', async () => {
  await create('APP_BEFORE');
  const id = await subscribe();
  const other = await subscribe({ keyPrefixes: ['DB_'] });
  await create('APP_WHILE');
  // The write queued nothing itself.
  expect(await queued()).toEqual([]);
  await t.app.webhookDispatcher.fanOut();
  expect(await queued()).toEqual([{ key: 'APP_WHILE', subscription_id: id }]);

  expect((await admin.req('PATCH', `/api/webhooks/${id}`, { enabled: false })).statusCode).toBe(200);
  await create('APP_DISABLED');
  expect((await admin.req('PATCH', `/api/webhooks/${id}`, { enabled: true })).statusCode).toBe(200);
  await create('APP_AGAIN');
  await create('DB_AGAIN');
  await t.app.webhookDispatcher.fanOut();
  // Each event once, however often the fan-out runs.
  await t.app.webhookDispatcher.fanOut();
  expect(await queued()).toEqual([
    { key: 'APP_WHILE', subscription_id: id },
    { key: 'APP_AGAIN', subscription_id: id },
    { key: 'DB_AGAIN', subscription_id: id },
    { key: 'DB_AGAIN', subscription_id: other },
  ]);
});

if (backend === 'postgres') {
  it('queues an event an older transaction commits after newer ones, and each event once', async () => {
    const id = await subscribe();
    const older = new pg.Client({ connectionString: testDatabaseUrl, options: `-c search_path=${t.schema}` });
    await older.connect();
    try {
      // An xid taken before the newer changes', with a lock in this schema (as a writer's
      // first statement takes), and its event written only after they were fanned out.
      await older.query('BEGIN');
      await older.query('LOCK TABLE secrets IN ROW EXCLUSIVE MODE');
      await older.query('SELECT pg_current_xact_id()');
      for (const key of ['NEWER_1', 'NEWER_2', 'NEWER_3']) await create(key);
      // Instances side by side: the cursor is fanned out by one at a time.
      await Promise.all([t.app.webhookDispatcher.fanOut(), t.app.webhookDispatcher.fanOut()]);
      await older.query(
        `INSERT INTO change_events (type, key, version, actor) VALUES ('secret.updated', 'OLDER_LATE', 1, 'test')`,
      );
      await older.query('COMMIT');
      await Promise.all([t.app.webhookDispatcher.fanOut(), t.app.webhookDispatcher.fanOut()]);
      await t.app.webhookDispatcher.fanOut();
      const keys = (await queued()).map((d) => {
        expect(d.subscription_id).toBe(id);
        return d.key;
      });
      expect(keys.sort()).toEqual(['NEWER_1', 'NEWER_2', 'NEWER_3', 'OLDER_LATE']);
    } finally {
      await older.end();
    }
  });
}
