import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Issue 11 item 10: one cursor codec (src/pagination.ts) with the range check on every list;
 * item 11: one date schema (src/dates.ts) refusing years outside 0001..9999 UTC with 400 on
 * both backends (PGlite answered 500). Both backends.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
});
afterAll(() => t?.close());

const get = (url: string) => t.app.inject({ method: 'GET', url, headers: t.auth() });
const cursor = (text: string) => Buffer.from(text).toString('base64url');

it('an overflowing cursor is 400 on the secrets, access-keys and audit lists', async () => {
  for (const [url, tag] of [
    ['/api/secrets', 'v1'],
    ['/api/access-keys', 'k1'],
    ['/api/audit', 'a1'],
  ] as const) {
    for (const bad of [`${tag}:9999999999999999999`, `${tag}:9223372036854775808`, 'x1:5', 'garbage']) {
      const res = await get(`${url}?cursor=${cursor(bad)}`);
      expect(res.statusCode, `${url} ${bad}`).toBe(400);
      expect(res.json().message).toBe(
        'Invalid cursor: pass the nextCursor value of a previous page unchanged',
      );
    }
    expect((await get(`${url}?cursor=${cursor(`${tag}:9223372036854775807`)}`)).statusCode).toBe(200);
    expect((await get(`${url}?limit=1001`)).statusCode).toBe(400);
  }
});

it('pages through access keys and the audit log with the shared codec', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: t.auth(),
      payload: { name: `page-${i}`, scopes: ['secrets:list'] },
    });
    expect(r.statusCode).toBe(201);
  }
  const first = (await get('/api/access-keys?limit=2')).json();
  expect(first.accessKeys).toHaveLength(2);
  const second = (await get(`/api/access-keys?limit=2&cursor=${first.nextCursor}`)).json();
  expect(second.accessKeys.map((k: { name: string }) => k.name)).toEqual(['page-0']);
  expect(second.nextCursor).toBeNull();
  const audit = (await get('/api/audit?limit=1')).json();
  expect(audit.entries).toHaveLength(1);
  const next = (await get(`/api/audit?limit=1&cursor=${audit.nextCursor}`)).json();
  expect(next.entries[0].id).not.toBe(audit.entries[0].id);
});

const OUT_OF_RANGE = ['9999-12-31T23:59:59-14:00', '0000-01-01T00:00:00Z', '0000-12-31T23:59:59+01:00'];

it('refuses dates outside 0001..9999 UTC with 400 in expiresAt, access-key expiry and audit filters', async () => {
  for (const d of OUT_OF_RANGE) {
    const create = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key: 'DATED', value: secretValue(), expiresAt: d },
    });
    expect(create.statusCode, d).toBe(400);
    expect(create.json().message).toBe(
      'expiresAt must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (in UTC)',
    );
    const key = await t.app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: t.auth(),
      payload: { name: 'dated', scopes: ['secrets:read'], expiresAt: d },
    });
    expect(key.statusCode, d).toBe(400);
    for (const f of ['from', 'to']) {
      const res = await get(`/api/audit?${f}=${encodeURIComponent(d)}`);
      expect(res.statusCode, `${f}=${d}`).toBe(400);
      expect(res.json().message).toContain(`${f} must be between`);
    }
  }
  const secrets = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM secrets WHERE key = 'DATED'`,
  );
  expect(secrets[0]?.n).toBe(0);
  // The edges themselves are accepted and stored.
  const edge = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'DATED', value: secretValue(), expiresAt: '9999-12-31T23:59:59Z' },
  });
  expect(edge.statusCode).toBe(201);
  const put = await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/DATED',
    headers: t.auth(),
    payload: { expiresAt: '9999-12-31T23:59:59-14:00' },
  });
  expect(put.statusCode).toBe(400);
  expect((await get('/api/audit?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z')).statusCode).toBe(200);
});
