import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createBulkRepository } from '../../src/secrets/bulk-repository.js';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';
import { expectNothingChanged } from '../helpers/unchanged.js';

/**
 * Issue 11 item 5: un-reserving and purging are admin-only (access keys: 403, audited as
 * denied, nothing changed). Item 9: a scoped export is filtered in SQL. Both backends.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
});
afterAll(() => t?.close());
beforeEach(() => t.reset());

async function put(key: string, isReserved = false) {
  const r = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key, value: secretValue(), isReserved },
  });
  expect(r.statusCode).toBe(201);
}
const deniedRows = async (action: string, key: string) =>
  (
    await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = $1 AND key = $2 AND outcome = 'denied'`,
      [action, key],
    )
  )[0]?.n;

it('an access key with secrets:write cannot un-reserve a secret; an admin can', async () => {
  await put('KEEP_ME', true);
  const k = await createAccessKey(t, { scopes: ['secrets:write', 'secrets:delete'] });
  const res = await expectNothingChanged(t.db, 'a refused un-reserve', () =>
    t.app.inject({
      method: 'PUT',
      url: '/api/secrets/KEEP_ME',
      headers: bearer(k.token),
      payload: { isReserved: false },
    }),
  );
  expect(res.statusCode).toBe(403);
  expect(res.json().message).toBe(
    `Admin access required: access key "${k.name}" cannot set isReserved to false (un-reserving is admin-only)`,
  );
  expect(await deniedRows('secret.update', 'KEEP_ME')).toBe(1);
  const row = await t.db.query<{ is_reserved: boolean }>(
    `SELECT is_reserved FROM secrets WHERE key = 'KEEP_ME'`,
  );
  expect(row[0]?.is_reserved).toBe(true);
  // Other updates by the key still work, and so does the admin's un-reserve.
  const desc = await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/KEEP_ME',
    headers: bearer(k.token),
    payload: { description: 'still mine', isReserved: true },
  });
  expect(desc.statusCode).toBe(200);
  const admin = await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/KEEP_ME',
    headers: t.auth(),
    payload: { isReserved: false },
  });
  expect(admin.statusCode).toBe(200);
});

it('the one un-reserve rule: isReserved:false on a secret that is not reserved is no un-reserve, for a key as in a batch', async () => {
  await put('PLAIN');
  const k = await createAccessKey(t, { scopes: ['secrets:write'] });
  const res = await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/PLAIN',
    headers: bearer(k.token),
    payload: { isReserved: false, description: 'by the key' },
  });
  expect(res.statusCode).toBe(200);
  const row = await t.db.query<{ is_reserved: boolean; description: string | null }>(
    `SELECT is_reserved, description FROM secrets WHERE key = 'PLAIN'`,
  );
  expect(row[0]).toEqual({ is_reserved: false, description: 'by the key' });
  expect(await deniedRows('secret.update', 'PLAIN')).toBe(0);
  // A key that does not exist is not found, whatever the flag says.
  const missing = await expectNothingChanged(t.db, 'an update of a missing key', () =>
    t.app.inject({
      method: 'PUT',
      url: '/api/secrets/NO_SUCH_KEY',
      headers: bearer(k.token),
      payload: { isReserved: false },
    }),
  );
  expect(missing.statusCode).toBe(404);
});

it('an access key with secrets:delete can soft-delete but not purge; an admin can purge', async () => {
  await put('GONE');
  const k = await createAccessKey(t, { scopes: ['secrets:delete'] });
  const del = await t.app.inject({ method: 'DELETE', url: '/api/secrets/GONE', headers: bearer(k.token) });
  expect(del.statusCode).toBe(200);
  const purge = await expectNothingChanged(t.db, 'a refused purge', () =>
    t.app.inject({
      method: 'DELETE',
      url: '/api/secrets/GONE?purge=true',
      headers: bearer(k.token),
    }),
  );
  expect(purge.statusCode).toBe(403);
  expect(purge.json().message).toBe(
    `Admin access required: access key "${k.name}" cannot purge secrets (permanent erasure is admin-only)`,
  );
  expect(await deniedRows('secret.delete', 'GONE')).toBe(1);
  const versions = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.key = 'GONE'`,
  );
  expect(versions[0]?.n).toBe(1);
  const admin = await t.app.inject({
    method: 'DELETE',
    url: '/api/secrets/GONE?purge=true',
    headers: t.auth(),
  });
  expect(admin.statusCode).toBe(200);
});

it('a scoped export reads only the rows the key may see, filtered in SQL', async () => {
  for (const k of ['APP_ONE', 'APP_TWO', 'OTHER_ONE', 'EXACT', 'EXACTLY_NOT']) await put(k);
  const repo = createBulkRepository();
  const rows = await repo.readableValues(t.db, undefined, {
    kind: 'patterns',
    exact: ['EXACT'],
    prefixes: ['APP_'],
  });
  expect(rows.map((r) => r.key)).toEqual(['APP_ONE', 'APP_TWO', 'EXACT']);
  const under = await repo.readableValues(t.db, 'APP_T', {
    kind: 'patterns',
    exact: ['EXACT'],
    prefixes: ['APP_'],
  });
  expect(under.map((r) => r.key)).toEqual(['APP_TWO']);
  const k = await createAccessKey(t, { scopes: ['secrets:read'], keys: ['APP_*', 'EXACT'] });
  const res = await t.app.inject({ method: 'GET', url: '/api/secrets/export', headers: bearer(k.token) });
  expect(res.statusCode).toBe(200);
  expect(Object.keys(res.json())).toEqual(['APP_ONE', 'APP_TWO', 'EXACT']);
});

it('one 403 code per meaning: a caller refused is AUTH_UNAUTHORIZED on every route, a reserved secret FORBIDDEN', async () => {
  await put('APP_RESERVED', true);
  await put('OTHER_SECRET');
  const k = await createAccessKey(t, { scopes: ['secrets:read', 'secrets:write'], keys: ['APP_*'] });
  // Each refusal is checked on every row of every table (a new version written despite the
  // 403 would leave key, is_reserved and is_active as they were).
  const as = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    expectNothingChanged(t.db, `refused ${method} ${url}`, () =>
      t.app.inject({ method, url, headers: bearer(k.token), ...(payload ? { payload } : {}) }),
    );
  // The caller may not: refused by the guard (scope, patterns, admin-only), by the batch
  // import (patterns, un-reserving) and by render (patterns): the same meaning, one code.
  const refusals = [
    await as('DELETE', '/api/secrets/APP_RESERVED'),
    await as('GET', '/api/secrets/OTHER_SECRET'),
    await as('PUT', '/api/secrets/APP_RESERVED', { isReserved: false }),
    await as('POST', '/api/secrets/batch', { secrets: [{ key: 'OTHER_SECRET', value: secretValue() }] }),
    await as('POST', '/api/secrets/batch', {
      secrets: [{ key: 'APP_RESERVED', value: secretValue(), isReserved: false }],
    }),
    await as('POST', '/api/secrets/render', { template: 'x={{Secrets.OTHER_SECRET}}' }),
  ];
  for (const r of refusals) {
    expect(r.statusCode, r.body).toBe(403);
    expect(r.json().error, r.body).toBe('AUTH_UNAUTHORIZED');
  }
  // A rule protects the secret whoever asks (the admin included): FORBIDDEN.
  const reserved = await expectNothingChanged(t.db, 'a refused delete of a reserved secret', () =>
    t.app.inject({
      method: 'DELETE',
      url: '/api/secrets/APP_RESERVED',
      headers: t.auth(),
    }),
  );
  expect(reserved.statusCode).toBe(403);
  expect(reserved.json().error).toBe('FORBIDDEN');
  // Nothing changed.
  const rows = await t.db.query<{ key: string; is_reserved: boolean; is_active: boolean }>(
    `SELECT key, is_reserved, is_active FROM secrets ORDER BY key`,
  );
  expect(rows).toEqual([
    { key: 'APP_RESERVED', is_reserved: true, is_active: true },
    { key: 'OTHER_SECRET', is_reserved: false, is_active: true },
  ]);
});
