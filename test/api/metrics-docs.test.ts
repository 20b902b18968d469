import { expect, it } from 'vitest';
import { secretValue } from '../helpers/secrets.js';
import { useTestServer } from '../helpers/server.js';

const t = useTestServer();

const metrics = async () => {
  const res = await fetch(`${t.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
};

it('counts requests by route pattern and status, never by key or value', async () => {
  const value = secretValue('metric');
  await t.client.setSecret('METRIC_SECRET_NAME', value);
  expect(await t.client.getSecret('METRIC_SECRET_NAME')).toBe(value);
  await expect(t.client.getSecret('ANOTHER_SECRET_NAME')).rejects.toThrow(/not found/);
  await fetch(`${t.url}/no/such/path/SECRET_IN_URL`);
  const text = await metrics();
  expect(text).toMatch(
    /http_requests_total\{method="GET",route="\/api\/secrets\/:key",status_code="200"\} 1/,
  );
  expect(text).toMatch(
    /http_requests_total\{method="GET",route="\/api\/secrets\/:key",status_code="404"\} 1/,
  );
  expect(text).toMatch(/http_requests_total\{method="POST",route="\/api\/secrets",status_code="201"\} 1/);
  expect(text).toMatch(/http_requests_total\{method="GET",route="unmatched",status_code="404"\} 1/);
  expect(text).toMatch(
    /http_request_duration_seconds_bucket\{le="0\.1",method="GET",route="\/api\/secrets\/:key"/,
  );
  expect(text).toMatch(/^db_pool_connections_total \d+$/m);
  expect(text).toMatch(/^db_pool_requests_waiting 0$/m);
  for (const leak of ['METRIC_SECRET_NAME', 'ANOTHER_SECRET_NAME', 'SECRET_IN_URL', value]) {
    expect(text).not.toContain(leak);
  }
});

it('counts decrypt failures (a tampered row fails closed with 500 DECRYPTION_FAILED)', async () => {
  await t.client.setSecret('TAMPERED', secretValue('tamper'));
  await t.db.query(
    `UPDATE secret_versions SET ciphertext = decode('00', 'hex') || ciphertext
     WHERE secret_id = (SELECT id FROM secrets WHERE key = 'TAMPERED')`,
  );
  const before = Number(/^secrets_decrypt_failures_total (\d+)$/m.exec(await metrics())?.[1]);
  const res = await fetch(`${t.url}/api/secrets/TAMPERED`, { headers: t.auth() });
  expect(res.status).toBe(500);
  expect(((await res.json()) as { error: string }).error).toBe('DECRYPTION_FAILED');
  const exp = await fetch(`${t.url}/api/secrets/export`, { headers: t.auth() });
  expect(exp.status).toBe(500);
  const after = Number(/^secrets_decrypt_failures_total (\d+)$/m.exec(await metrics())?.[1]);
  expect(after - before).toBe(2);
  await t.db.query(`DELETE FROM secrets WHERE key = 'TAMPERED'`);
});

it('serves the API reference at /docs from the same OpenAPI document', async () => {
  const page = await fetch(`${t.url}/docs/`, { redirect: 'follow' });
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain('swagger-ui');
  // every script and stylesheet the page loads is served (the page renders, not just its shell)
  const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  expect(assets.length).toBeGreaterThan(0);
  for (const a of assets) {
    const res = await fetch(new URL(a, `${t.url}/docs/`));
    expect(res.status, a).toBe(200);
    await res.arrayBuffer();
  }
  const spec = await fetch(`${t.url}/docs/json`);
  expect(spec.status).toBe(200);
  const doc = (await spec.json()) as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths)).toEqual(
    expect.arrayContaining(['/api/secrets/export', '/api/secrets/render']),
  );
});
