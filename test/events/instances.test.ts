import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

// Several instances on one database: PostgreSQL only by nature (PGlite is one process's).
if (backend === 'postgres') {
  describe('two instances delivering', () => {
    let a: TestApp;
    let b: TestApp;
    let r: Receiver;
    beforeAll(async () => {
      const env = {
        AUDIT_SEAL_INTERVAL_MS: '0',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_ALLOW_PRIVATE: 'true',
        WEBHOOK_POLL_MS: '0',
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
      const res = await api(a).req('POST', '/api/webhooks', { url: r.url });
      expect(res.statusCode).toBe(201);
      r.secrets.push(res.json().secret);
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
        for (let i = 0; i < 200 && (await pending()) > 0; i++) {
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
      const attempts = await a.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_attempts`);
      expect(attempts[0]!.n).toBe(24);
      for (const key of keys)
        expect(r.received.filter((x) => x.body.data.key === key).map((x) => x.body.data.version)).toEqual([
          1, 2,
        ]);
    });
  });
}
