import { describe, expect, it } from 'vitest';
import { sealValue } from '../../src/crypto/envelope.js';
import { sealedParams } from '../../src/db/sealed-columns.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { startReceiver } from '../helpers/webhook-receiver.js';

// The default rules (no WEBHOOK_ALLOW_PRIVATE); http allowed so that only the address decides.
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_POLL_MS: '0' },
  resetEachTest: true,
});
const admin = api(t);

describe('webhook destinations (SSRF)', () => {
  it('refuses loopback, private, link-local and metadata addresses at creation', async () => {
    for (const url of [
      'http://127.0.0.1:8080/hook',
      'http://localhost/hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://0x7f000001/hook',
      'http://0.0.0.0/hook',
      'http://10.1.2.3/hook',
      'http://172.16.0.1/hook',
      'http://192.168.1.1/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://100.100.100.200/latest/meta-data/',
      'http://[fd00:ec2::254]/hook',
      'http://[fe80::1]/hook',
    ]) {
      const res = await admin.req('POST', '/api/webhooks', { url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message, url).toContain('webhooks are not sent to loopback, private');
    }
    const n = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_subscriptions`);
    expect(n[0]!.n).toBe(0);
  });

  /**
   * A subscription written straight into the tables, as if its URL had been accepted when it
   * was made (the API would refuse it now), with a sealed signing secret.
   */
  async function subscribeBehindTheApi(id: string, url: string) {
    await t.db.query(
      `INSERT INTO webhook_subscriptions (id, url, event_types, created_by) VALUES ($1, $2, '{secret.created}', 'test')`,
      [id, url],
    );
    const sealed = sealValue(
      t.keyring,
      { secretId: id, key: 'webhook', version: 1 },
      'whsec_dGVzdHRlc3R0ZXN0dGVzdA==',
    );
    await t.db.query(
      `INSERT INTO webhook_secrets (subscription_id, generation, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
       VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [id, ...sealedParams(sealed)],
    );
  }

  it('refuses at delivery a destination that now resolves to a private address (DNS rebinding)', async () => {
    const r = await startReceiver();
    try {
      // As if the name had resolved to a public address when the subscription was made.
      const id = '00000000-0000-4000-8000-000000000001';
      const port = new URL(r.url).port;
      await subscribeBehindTheApi(id, `http://localhost:${port}/hook`);
      expect((await admin.create({ key: 'APP_X', value: secretValue() })).statusCode).toBe(201);
      await t.app.webhookDispatcher.deliverNow();
      await t.app.webhookDispatcher.idle();
      // The literal address is refused without a lookup too.
      await t.db.query(`UPDATE webhook_subscriptions SET url = $2 WHERE id = $1`, [
        id,
        `http://127.0.0.1:${port}/hook`,
      ]);
      await t.db.query(`UPDATE webhook_deliveries SET next_at = now()`);
      await t.app.webhookDispatcher.deliverNow();
      await t.app.webhookDispatcher.idle();
      expect(r.received.length + r.refused + r.rejected).toBe(0);
      const log = (await admin.req('GET', `/api/webhooks/${id}/deliveries`)).json().deliveries;
      expect(log).toHaveLength(1);
      expect(log[0]).toMatchObject({ status: 'pending', attempts: 2 });
      expect(log[0].lastError).toContain('refused');
      const attempts = await t.db.query<{ error: string }>(
        `SELECT error FROM webhook_attempts ORDER BY attempt`,
      );
      expect(attempts.map((a) => a.error)).toEqual([
        expect.stringContaining('localhost resolves to'),
        expect.stringContaining('127.0.0.1 is loopback'),
      ]);
    } finally {
      await r.close();
    }
  });

  it('refuses at delivery over https too: the name is checked before the TLS connection', async () => {
    // The sender hands its checking lookup to tls.connect as to net.connect: nothing is
    // listening on this port, so only the refusal can be the attempt's error.
    const id = '00000000-0000-4000-8000-000000000002';
    await subscribeBehindTheApi(id, 'https://localhost:9/hook');
    expect((await admin.create({ key: 'APP_S', value: secretValue() })).statusCode).toBe(201);
    await t.app.webhookDispatcher.deliverNow();
    await t.app.webhookDispatcher.idle();
    const log = (await admin.req('GET', `/api/webhooks/${id}/deliveries`)).json().deliveries;
    expect(log).toMatchObject([{ status: 'pending', attempts: 1, lastResponseStatus: null }]);
    expect(log[0].lastError).toContain('localhost resolves to');
  });
});
