import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { appsOverSameData } from '../helpers/same-data.js';
import { secretValue } from '../helpers/secrets.js';
import { deliversToReceiver, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * Webhook signing secrets are sealed like values, so key rotation must move them too: after
 * the ring gains B, POST /api/keys/rewrap re-wraps them, kid A leaves the ring, and
 * deliveries still carry signatures a receiver verifies with the whsec_ it was given.
 */

const KA = randomBytes(32).toString('base64');
const KB = randomBytes(32).toString('base64');

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});
const { appWith, closeApp, call } = appsOverSameData('webhook-rewrap');

async function deliverAll(a: TestApp) {
  for (let i = 0; i < 50; i++) {
    await a.app.webhookDispatcher.deliverNow();
    await a.app.webhookDispatcher.idle();
    const rows = await a.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'`,
    );
    if (rows[0]?.n === 0) return;
  }
}

it('rewrap moves webhook signing secrets to the new key: old key removed, deliveries still verify', async () => {
  receiver = await startReceiver();
  const a = await appWith(`A:${KA}`, deliversToReceiver);
  const created = await call(a, 'POST', '/api/webhooks', { url: receiver.url });
  expect(created.statusCode, created.body).toBe(201);
  const { id, secret } = created.json() as { id: string; secret: string };
  // A rotated subscription holds two generations, both sealed under A.
  const rotated = await call(a, 'POST', `/api/webhooks/${id}/rotate-secret`);
  expect(rotated.statusCode, rotated.body).toBe(200);
  const newer = (rotated.json() as { secret: string }).secret;
  await closeApp(a);

  // With webhook secrets still under A, dropping A is refused at start-up.
  await expect(appWith(`B:${KB}`, deliversToReceiver)).rejects.toThrow(
    /Stored values still use key id\(s\) "A"/,
  );

  const ab = await appWith(`A:${KA},B:${KB}`, deliversToReceiver);
  const status = (await call(ab, 'GET', '/api/keys/status')).json();
  expect(status.pendingRewrap).toBe(2);
  const rewrap = await call(ab, 'POST', '/api/keys/rewrap');
  expect(rewrap.statusCode, rewrap.body).toBe(200);
  expect(rewrap.json()).toMatchObject({ activeKid: 'B', rewrapped: 2, failed: 0, remaining: 0 });
  const kids = await ab.db.query<{ kid: string }>(`SELECT DISTINCT kid FROM webhook_secrets`);
  expect(kids.map((k) => k.kid)).toEqual(['B']);
  await closeApp(ab);

  // Kid A is gone. Changes are delivered signed with both generations (the rotation's grace
  // period), and each generation alone verifies them.
  const b = await appWith(`B:${KB}`, deliversToReceiver);
  for (const [key, verifyWith] of [
    ['APP_OLD_SECRET', secret],
    ['APP_NEW_SECRET', newer],
  ] as const) {
    receiver.secrets.splice(0, receiver.secrets.length, verifyWith);
    const res = await call(b, 'POST', '/api/secrets', { key, value: secretValue() });
    expect(res.statusCode).toBe(201);
    await deliverAll(b);
  }
  expect(receiver.rejected).toBe(0);
  expect(receiver.received.map((r) => r.body.data.key)).toEqual(['APP_OLD_SECRET', 'APP_NEW_SECRET']);
}, 60_000);
