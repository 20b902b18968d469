import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backend, createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

// The dispatcher's timer is off (WEBHOOK_POLL_MS=0): each test drives delivery rounds
// itself, so nothing depends on timing. Retries are due within milliseconds.
const t = useTestApp({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    ...deliversToReceiver,
    WEBHOOK_RETRY_BASE_MS: '1',
    WEBHOOK_RETRY_MAX_MS: '5',
    WEBHOOK_DISABLE_MIN_FAILURES: '10',
    WEBHOOK_DISABLE_AFTER_MS: '0',
  },
  resetEachTest: true,
});
const admin = api(t, 'alice');

const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function receiver() {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

const subscribe = (r: Receiver, body: Record<string, unknown> = {}) => subscribeReceiver(admin, r, body);

const pending = async () =>
  (
    await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'`,
    )
  )[0]!.n;

/** Delivery rounds until nothing is pending (or `rounds` rounds ran). */
async function deliver(rounds = 500) {
  const d = t.app.webhookDispatcher;
  for (let i = 0; i < rounds; i++) {
    await d.deliverNow();
    await d.idle();
    if ((await pending()) === 0) return;
  }
}

async function events() {
  return t.db.query<{
    type: string;
    key: string | null;
    version: number | null;
    etag: string | null;
    actor: string;
    audit_id: string | null;
  }>(`SELECT type, key, version, etag, actor, audit_id::text AS audit_id FROM change_events ORDER BY seq`);
}

describe('the outbox', () => {
  it('writes exactly one event per committed change, with its type and data, and none for no-ops', async () => {
    const r = await receiver();
    await subscribe(r);
    const K = 'APP_ONE';
    const steps: [() => Promise<{ statusCode: number; headers: Record<string, unknown> }>, string | null][] =
      [
        [() => admin.create({ key: K, value: secretValue() }), 'secret.created'],
        [() => admin.update(K, { value: secretValue() }), 'secret.updated'],
        [() => admin.update(K, { isReserved: true }), 'secret.reserved'],
        [() => admin.update(K, { isReserved: false }), 'secret.unreserved'],
        [() => admin.update(K, { description: 'd' }), 'secret.updated'],
        [() => admin.remove(K), 'secret.deleted'],
        [() => admin.remove(K), null],
        [() => admin.req('POST', `/api/secrets/${K}/restore`), 'secret.restored'],
        [() => admin.req('POST', `/api/secrets/${K}/restore`), null],
        [() => admin.req('POST', `/api/secrets/${K}/rollback`, { version: 1 }), 'secret.rolled_back'],
        [() => admin.update(K, { isActive: false }), 'secret.deleted'],
        [() => admin.create({ key: K, value: secretValue() }), 'secret.revived'],
        [() => admin.update(K, { isActive: false }), 'secret.deleted'],
        [() => admin.req('DELETE', `/api/secrets/${K}?purge=true`), 'secret.purged'],
        [
          () =>
            admin.req('POST', '/api/secrets/batch', {
              secrets: [
                { key: 'APP_TWO', value: secretValue() },
                { key: 'DB_ONE', value: secretValue() },
              ],
            }),
          'batch',
        ],
      ];
    const expected: string[] = [];
    for (const [step, type] of steps) {
      const before = (await events()).length;
      const res = await step();
      expect(res.statusCode).toBeLessThan(300);
      const after = await events();
      if (type === null) expect(after.length, 'a no-op writes no event').toBe(before);
      else if (type === 'batch') {
        expect(after.slice(before).map((e) => [e.type, e.key])).toEqual([
          ['secret.created', 'APP_TWO'],
          ['secret.created', 'DB_ONE'],
        ]);
        expected.push('secret.created', 'secret.created');
      } else {
        expect(after.length).toBe(before + 1);
        const e = after[before]!;
        expect(e.type).toBe(type);
        expect(e.key).toBe(K);
        expect(e.actor).toBe('admin:alice');
        if (type !== 'secret.purged') expect(`${e.etag}`).toBe(res.headers.etag ?? e.etag);
        expected.push(type);
      }
    }
    // Every event names the audit row of its change: same key, same version, a success.
    const rows = await t.db.query<{
      type: string;
      action: string;
      key: string;
      ev: number;
      av: number;
      outcome: string;
    }>(
      `SELECT e.type, a.action, a.key, e.version AS ev, a.version AS av, a.outcome
       FROM change_events e JOIN audit_log a ON a.id = e.audit_id ORDER BY e.seq`,
    );
    expect(rows.length).toBe(expected.length);
    for (const row of rows) {
      expect(row.outcome).toBe('success');
      expect(row.ev).toBe(row.av);
    }
    // The receiver gets the same events, each verified with the official library.
    await deliver();
    expect(r.errors).toEqual([]);
    expect(r.rejected).toBe(0);
    // In order per key (keys are delivered side by side).
    expect(r.received.filter((x) => x.body.data.key === K).map((x) => x.body.type)).toEqual(
      expected.slice(0, -2),
    );
    expect(r.received.length).toBe(expected.length);
    const first = r.received[0]!;
    expect(first.body).toMatchObject({
      type: 'secret.created',
      data: { key: K, version: 1, actor: 'admin:alice' },
    });
    // K was purged before delivery: its events keep the name, not the id (no ETag).
    expect(r.received.filter((x) => x.body.data.key === K).map((x) => x.body.data.etag)).toEqual(
      expected.slice(0, -2).map(() => null),
    );
    const kept = r.received.find((x) => x.body.data.key === 'APP_TWO')!;
    expect(kept.body.data.etag).toMatch(/^"[0-9a-f-]{36}\.1"$/);
    expect(first.body.data.auditId).toMatch(/^\d+$/);
    expect(first.id).toBe(first.body.id);
    // Events carry no values.
    const all = JSON.stringify(r.received);
    const stored = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM secret_versions`);
    expect(stored[0]!.n).toBeGreaterThan(0);
    expect(all).not.toMatch(/"value"/);
  });

  it('writes no event for a change that rolled back', async () => {
    const r = await receiver();
    await subscribe(r);
    expect((await admin.create({ key: 'APP_X', value: secretValue() })).statusCode).toBe(201);
    const before = (await events()).length;
    // A batch whose later entry fails after the earlier one was written: all rolled back.
    const res = await admin.req('POST', '/api/secrets/batch', {
      secrets: [
        { key: 'APP_A', value: secretValue() },
        { key: 'APP_Z', value: secretValue(), ifMatch: '"not-the-etag"' },
      ],
    });
    expect(res.statusCode).toBe(412);
    // Refused outright: a stale If-Match, a duplicate create.
    expect(
      (
        await admin.send({
          method: 'PUT',
          url: '/api/secrets/APP_X',
          headers: { 'if-match': '"x.1"' },
          payload: { value: 'v' },
        })
      ).statusCode,
    ).toBe(412);
    expect((await admin.create({ key: 'APP_X', value: secretValue() })).statusCode).toBe(409);
    expect((await events()).length).toBe(before);
    expect((await admin.reveal('APP_A')).statusCode).toBe(404);
    await deliver();
    expect(r.received.map((x) => x.body.data.key)).toEqual(['APP_X']);
  });
});

describe('webhook delivery', () => {
  it('delivers everything after the receiver comes back, in order per key, each webhook-id once', async () => {
    const r = await receiver();
    await subscribe(r);
    r.mode = 'down';
    for (let i = 0; i < 3; i++) {
      expect(
        (
          await (i === 0
            ? admin.create({ key: 'APP_K', value: secretValue() })
            : admin.update('APP_K', { value: secretValue() }))
        ).statusCode,
      ).toBeLessThan(300);
      expect(
        (
          await (i === 0
            ? admin.create({ key: 'APP_L', value: secretValue() })
            : admin.update('APP_L', { value: secretValue() }))
        ).statusCode,
      ).toBeLessThan(300);
    }
    await deliver(2);
    expect(r.refused).toBeGreaterThanOrEqual(2);
    expect(r.received.length).toBe(0);
    // The failed attempts are in the delivery log.
    const id = (await admin.req('GET', '/api/webhooks')).json().webhooks[0].id;
    const log = (await admin.req('GET', `/api/webhooks/${id}/deliveries`)).json().deliveries;
    expect(
      log.some(
        (d: { lastResponseStatus: number | null; attempts: number }) =>
          d.lastResponseStatus === 503 && d.attempts >= 1,
      ),
    ).toBe(true);
    r.mode = 'up';
    await deliver();
    expect(await pending()).toBe(0);
    const ids = new Set(r.received.map((x) => x.id));
    expect(ids.size).toBe(6);
    for (const key of ['APP_K', 'APP_L']) {
      const versions = r.received.filter((x) => x.body.data.key === key).map((x) => x.body.data.version);
      expect(versions).toEqual([1, 2, 3]);
    }
    // Redeliver: the same event again, with the same webhook-id.
    const delivered = (await admin.req('GET', `/api/webhooks/${id}/deliveries`)).json().deliveries;
    const one = delivered.find((d: { status: string }) => d.status === 'delivered');
    // The log shows each delivery's last attempt: for these, the success after the failures.
    for (const d of delivered)
      expect(d).toMatchObject({
        status: 'delivered',
        lastResponseStatus: 204,
        lastError: null,
        lastLatencyMs: expect.any(Number),
        attempts: expect.any(Number),
      });
    const again = await admin.req('POST', `/api/webhooks/${id}/deliveries/${one.id}/redeliver`);
    expect(again.statusCode).toBe(202);
    await deliver();
    expect(r.received.length).toBe(7);
    expect(r.received[6]!.id).toBe(one.eventId);
    // A first-try success is in the log as fully as one after retries.
    const [newest] = (await admin.req('GET', `/api/webhooks/${id}/deliveries`)).json().deliveries;
    expect(newest).toMatchObject({
      eventId: one.eventId,
      status: 'delivered',
      attempts: 1,
      lastResponseStatus: 204,
      lastError: null,
      lastLatencyMs: expect.any(Number),
    });
  });

  it('sends an APP_ subscription only APP_ keys, and only the types it asked for', async () => {
    const app = await receiver();
    const all = await receiver();
    await subscribe(app, { keyPrefixes: ['APP_'], eventTypes: ['secret.created', 'secret.deleted'] });
    await subscribe(all);
    for (const key of ['APP_ONE', 'DB_ONE', 'DB_TWO', 'APP_TWO']) {
      expect((await admin.create({ key, value: secretValue() })).statusCode).toBe(201);
      expect((await admin.update(key, { value: secretValue() })).statusCode).toBe(200);
    }
    await deliver();
    expect(app.received.map((x) => [x.body.type, x.body.data.key])).toEqual([
      ['secret.created', 'APP_ONE'],
      ['secret.created', 'APP_TWO'],
    ]);
    expect(all.received.length).toBe(8);
  });

  it('signs with both secrets during a rotation grace period', async () => {
    const r = await receiver();
    const sub = await subscribe(r);
    const rot = await admin.req('POST', `/api/webhooks/${sub.id}/rotate-secret`);
    expect(rot.statusCode).toBe(200);
    const next = rot.json().secret as string;
    expect(next).toMatch(/^whsec_/);
    expect(next).not.toBe(sub.secret);
    expect(Date.parse(rot.json().previousSecretRetiresAt)).toBeGreaterThan(Date.now());
    expect((await admin.create({ key: 'APP_R', value: secretValue() })).statusCode).toBe(201);
    // Each secret alone must verify the delivery.
    r.secrets.splice(0, r.secrets.length, sub.secret);
    await deliver();
    expect(r.received.length).toBe(1);
    r.secrets.splice(0, r.secrets.length, next);
    await admin.req(
      'POST',
      `/api/webhooks/${sub.id}/deliveries/${(await admin.req('GET', `/api/webhooks/${sub.id}/deliveries`)).json().deliveries[0].id}/redeliver`,
    );
    await deliver();
    expect(r.rejected).toBe(0);
    expect(r.received.length).toBe(2);
    expect(r.received[1]!.signature.split(' ')).toHaveLength(2);
    // The secrets are sealed at rest: no stored byte equals the secret's.
    const raw = await t.db.query<{ c: Buffer }>(`SELECT ciphertext AS c FROM webhook_secrets`);
    expect(raw.length).toBe(2);
    for (const row of raw) expect(row.c.toString('latin1')).not.toContain(next.slice(6, 20));
    const view = await admin.req('GET', `/api/webhooks/${sub.id}`);
    expect(view.body).not.toContain('whsec_');
  });

  it('does not let a slow receiver hold up another subscription', async () => {
    const slow = await receiver();
    const fast = await receiver();
    await subscribe(slow);
    await subscribe(fast);
    slow.mode = 'hold';
    expect((await admin.create({ key: 'APP_S', value: secretValue() })).statusCode).toBe(201);
    const d = t.app.webhookDispatcher;
    await d.deliverNow();
    await slow.held();
    // The slow receiver still holds its request: the fast one has had its event all the same.
    await fast.waitFor(1);
    expect(slow.received.length).toBe(0);
    slow.release();
    await d.idle();
    expect(slow.received.length).toBe(1);
  });

  it('disables a subscription after a run of failures and says so with an event', async () => {
    const bad = await receiver();
    const watcher = await receiver();
    const sub = await subscribe(bad);
    await subscribe(watcher, { eventTypes: ['webhook.disabled'] });
    bad.mode = 'down';
    expect((await admin.create({ key: 'APP_D', value: secretValue() })).statusCode).toBe(201);
    await deliver(50);
    const view = (await admin.req('GET', `/api/webhooks/${sub.id}`)).json();
    expect(view.enabled).toBe(false);
    expect(view.disabledReason).toContain('failed attempts');
    expect(bad.refused).toBe(10);
    expect(watcher.received.map((x) => x.body)).toEqual([
      expect.objectContaining({
        type: 'webhook.disabled',
        data: expect.objectContaining({ subscriptionId: sub.id }),
      }),
    ]);
    // Re-enabled, it gets what was left pending.
    bad.mode = 'up';
    expect((await admin.req('PATCH', `/api/webhooks/${sub.id}`, { enabled: true })).statusCode).toBe(200);
    await deliver();
    expect(bad.received.map((x) => x.body.data.key)).toEqual(['APP_D']);
  });

  it('emits secret.expiring once per secret and expiry', async () => {
    const r = await receiver();
    await subscribe(r, { eventTypes: ['secret.expiring'] });
    const soon = new Date(Date.now() + 86_400_000).toISOString();
    expect((await admin.create({ key: 'APP_E', value: secretValue(), expiresAt: soon })).statusCode).toBe(
      201,
    );
    expect((await admin.create({ key: 'APP_F', value: secretValue() })).statusCode).toBe(201);
    await t.app.webhookDispatcher.sweep();
    await t.app.webhookDispatcher.sweep();
    await deliver();
    expect(r.received.map((x) => [x.body.type, x.body.data.key])).toEqual([['secret.expiring', 'APP_E']]);
    // A new expiry is a new notice.
    const later = new Date(Date.now() + 2 * 86_400_000).toISOString();
    expect((await admin.update('APP_E', { expiresAt: later })).statusCode).toBe(200);
    await t.app.webhookDispatcher.sweep();
    await deliver();
    expect(r.received.filter((x) => x.body.type === 'secret.expiring')).toHaveLength(2);
  });
});

describe('subscriptions', () => {
  it('are admin only and audited, and refuse bad input with 400 and nothing stored', async () => {
    for (const [payload, text] of [
      [{ url: 'ftp://example.com/' }, 'https'],
      [{ url: 'not a url' }, 'absolute URL'],
      [{ url: 'https://u:p@example.com/' }, 'credentials'],
      [{ url: 'https://example.com/', eventTypes: ['secret.nope'] }, 'each event type'],
      [{ url: 'https://example.com/', eventTypes: [] }, 'at least one'],
      [{ url: 'https://example.com/', keyPrefixes: ['app_'] }, 'key prefix'],
      [{ url: 'https://example.com/', extra: 1 }, 'Unknown field'],
    ] as const) {
      const res = await admin.req('POST', '/api/webhooks', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().message).toContain(text);
    }
    expect(
      (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_subscriptions`))[0]!.n,
    ).toBe(0);
    const r = await receiver();
    const sub = await subscribe(r);
    const key = await t.app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: t.auth(),
      payload: { name: 'k', scopes: ['secrets:read', 'secrets:list'] },
    });
    const token = key.json().token as string;
    const denied = await t.app.inject({
      method: 'GET',
      url: '/api/webhooks',
      headers: { 'x-api-key': token },
    });
    expect(denied.statusCode).toBe(403);
    expect((await admin.req('DELETE', `/api/webhooks/${sub.id}`)).statusCode).toBe(200);
    expect((await admin.req('DELETE', `/api/webhooks/${sub.id}`)).statusCode).toBe(404);
    // Rotation finds no row to lock: 404, not a new generation for a deleted subscription.
    expect((await admin.req('POST', `/api/webhooks/${sub.id}/rotate-secret`)).statusCode).toBe(404);
    const audit = await t.db.query<{ action: string; outcome: string }>(
      `SELECT action, outcome FROM audit_log WHERE action LIKE 'webhook.%' ORDER BY id`,
    );
    expect(audit.map((a) => `${a.action}:${a.outcome}`)).toEqual(
      expect.arrayContaining([
        'webhook.create:success',
        'webhook.delete:success',
        'webhook.delete:not_found',
        'webhook.list:denied',
      ]),
    );
  });
});

// Several instances on one database: PostgreSQL only by nature (PGlite is one process's).
if (backend === 'postgres') {
  describe('two instances delivering', () => {
    let a: TestApp;
    let b: TestApp;
    let r: Receiver;
    beforeAll(async () => {
      const env = {
        AUDIT_SEAL_INTERVAL_MS: '0',
        ...deliversToReceiver,
      };
      a = await createTestApp({ env });
      b = await createTestApp({ schema: a.schema!, env: a.env });
      r = await startReceiver();
    });
    afterAll(async () => {
      await r?.close();
      await b?.close();
      await a?.close();
    });

    it('never send the same event at the same time, and send each once', async () => {
      await subscribeReceiver(api(a), r);
      r.delayMs = 20;
      const keys = Array.from({ length: 12 }, (_, i) => `APP_${i}`);
      for (const key of keys)
        expect((await api(b).create({ key, value: secretValue() })).statusCode).toBe(201);
      for (const key of keys)
        expect((await api(a).update(key, { value: secretValue() })).statusCode).toBe(200);
      const pending = async () =>
        (
          await a.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status <> 'delivered'`,
          )
        )[0]!.n;
      const run = async (t: TestApp) => {
        // A first round in each at least: the deliveries are queued by the rounds' fan-out.
        for (let i = 0; i === 0 || (i < 200 && (await pending()) > 0); i++) {
          await t.app.webhookDispatcher.deliverNow();
          await t.app.webhookDispatcher.idle();
        }
      };
      await Promise.all([run(a), run(b)]);
      expect(await pending()).toBe(0);
      expect(r.maxConcurrentPerId).toBe(1);
      expect(r.received.length).toBe(24);
      expect(new Set(r.received.map((x) => x.id)).size).toBe(24);
      // Both took part (the claims interleave), and each key's versions arrived in order.
      // One attempt each (a first-try success is its delivery row: no webhook_attempts row).
      const attempts = await a.db.query<{ n: number }>(
        `SELECT sum(attempts)::int AS n FROM webhook_deliveries`,
      );
      expect(attempts[0]!.n).toBe(24);
      for (const key of keys)
        expect(r.received.filter((x) => x.body.data.key === key).map((x) => x.body.data.version)).toEqual([
          1, 2,
        ]);
    });
  });
}
