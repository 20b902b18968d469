import { describe, expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { expectNothingChanged } from '../helpers/unchanged.js';

const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' }, resetEachTest: true });

const admin = api(t);

async function seed(key: string, value = secretValue()) {
  expect((await admin.create({ key, value })).statusCode).toBe(201);
  return value;
}

describe('creating and listing', () => {
  it('returns an ik_ token once, lists the key without it', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: t.auth('alice'),
      payload: { name: 'ci', scopes: ['secrets:read'], keys: ['STRIPE_*'] },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.token).toMatch(/^ik_[0-9a-f]{64}$/);
    expect(created).toMatchObject({
      name: 'ci',
      scopes: ['secrets:read'],
      keys: ['STRIPE_*'],
      createdBy: 'admin:alice',
      status: 'active',
      tokenPrefix: created.token.slice(0, 11),
      lastUsedAt: null,
    });
    const list = await t.app.inject({ method: 'GET', url: '/api/access-keys', headers: t.auth() });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(created.token);
    expect(list.json().accessKeys).toEqual([expect.objectContaining({ id: created.id, name: 'ci' })]);
    expect(list.json().accessKeys[0].token).toBeUndefined();
  });

  it('refuses bad input with 400 and a clear message', async () => {
    for (const [payload, text] of [
      [{ name: 'x', scopes: ['secrets:admin'] }, 'each scope must be one of'],
      [{ name: 'x', scopes: [] }, 'at least one scope'],
      [{ scopes: ['secrets:read'] }, 'name is required'],
      [{ name: 'x', scopes: ['secrets:read'], keys: ['lower_*'] }, 'prefix pattern'],
      [{ name: 'x', scopes: ['secrets:read'], keys: ['A*B'] }, 'prefix pattern'],
      [{ name: 'x', scopes: ['secrets:read'], expiresAt: '2001-01-01T00:00:00Z' }, 'in the future'],
      [{ name: 'x', scopes: ['secrets:read'], extra: 1 }, 'Unknown field'],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/api/access-keys', headers: t.auth(), payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().message).toContain(text);
    }
    const n = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM access_keys');
    expect(n[0]?.n).toBe(0);
  });

  it('paginates the list with a cursor', async () => {
    for (let i = 0; i < 3; i++) await createAccessKey(t, { name: `k${i}`, scopes: ['secrets:read'] });
    const p1 = (
      await t.app.inject({ method: 'GET', url: '/api/access-keys?limit=2', headers: t.auth() })
    ).json();
    expect(p1.accessKeys.map((k: { name: string }) => k.name)).toEqual(['k2', 'k1']);
    const p2 = (
      await t.app.inject({
        method: 'GET',
        url: `/api/access-keys?limit=2&cursor=${p1.nextCursor}`,
        headers: t.auth(),
      })
    ).json();
    expect(p2.accessKeys.map((k: { name: string }) => k.name)).toEqual(['k0']);
    expect(p2.nextCursor).toBeNull();
  });
});

describe('scope matrix', () => {
  // Every endpoint, what it needs, and a request that succeeds when allowed.
  const endpoints = [
    { name: 'list', need: 'secrets:list', method: 'GET', url: '/api/secrets', ok: 200 },
    { name: 'read', need: 'secrets:read', method: 'GET', url: '/api/secrets/APP_A', ok: 200 },
    { name: 'create', need: 'secrets:write', method: 'POST', url: '/api/secrets', body: 'create', ok: 201 },
    {
      name: 'update',
      need: 'secrets:write',
      method: 'PUT',
      url: '/api/secrets/APP_A',
      body: 'update',
      ok: 200,
    },
    { name: 'delete', need: 'secrets:delete', method: 'DELETE', url: '/api/secrets/APP_A', ok: 200 },
    { name: 'keys.create', need: 'admin', method: 'POST', url: '/api/access-keys', body: 'key', ok: 201 },
    { name: 'keys.list', need: 'admin', method: 'GET', url: '/api/access-keys', ok: 200 },
    { name: 'keys.revoke', need: 'admin', method: 'DELETE', url: '/api/access-keys/OTHER', ok: 200 },
    { name: 'audit', need: 'admin', method: 'GET', url: '/api/audit', ok: 200 },
    { name: 'audit.verify', need: 'admin', method: 'GET', url: '/api/audit/verify', ok: 200 },
  ] as const;
  const scopeSets = [
    ['secrets:read'],
    ['secrets:write'],
    ['secrets:delete'],
    ['secrets:list'],
    ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'],
  ];

  for (const scopes of scopeSets) {
    for (const e of endpoints) {
      for (const style of ['bearer', 'x-api-key'] as const) {
        const allowed = e.need !== 'admin' && scopes.includes(e.need);
        it(`${scopes.join('+')} -> ${e.name} (${style}): ${allowed ? e.ok : 403}`, async () => {
          await seed('APP_A');
          const other = await createAccessKey(t, { scopes: ['secrets:read'] });
          const k = await createAccessKey(t, { scopes });
          const payload =
            'body' in e
              ? e.body === 'create'
                ? { key: 'APP_NEW', value: secretValue() }
                : e.body === 'update'
                  ? { value: secretValue() }
                  : { name: 'made-by-key', scopes: ['secrets:read'] }
              : undefined;
          const send = () =>
            t.app.inject({
              method: e.method,
              url: e.url.replace('OTHER', other.id),
              headers: style === 'bearer' ? bearer(k.token) : apiKey(k.token),
              ...(payload ? { payload } : {}),
            });
          // A refusal must leave every row of every table as it was, not only answer 403.
          const res = allowed ? await send() : await expectNothingChanged(t.db, `refused ${e.name}`, send);
          expect(res.statusCode, res.body).toBe(allowed ? e.ok : 403);
          if (!allowed) {
            expect(res.json()).toMatchObject({ error: 'AUTH_UNAUTHORIZED', statusCode: 403 });
            expect(res.json().message).toMatch(
              e.need === 'admin' ? /Admin access required/ : new RegExp(`lacks the scope ${e.need}`),
            );
          }
        });
      }
    }
  }

  it('a refused revoke of a real access key leaves it active and working', async () => {
    await seed('APP_A');
    const victim = await createAccessKey(t, { scopes: ['secrets:read'] });
    const k = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'],
    });
    for (const headers of [bearer(k.token), apiKey(k.token), bearer(victim.token)]) {
      const res = await expectNothingChanged(t.db, 'a refused revoke', () =>
        t.app.inject({ method: 'DELETE', url: `/api/access-keys/${victim.id}`, headers }),
      );
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json().message).toMatch(/Admin access required/);
    }
    const listed = (await t.app.inject({ method: 'GET', url: '/api/access-keys', headers: t.auth() })).json();
    expect(listed.accessKeys.find((a: { id: string }) => a.id === victim.id)).toMatchObject({
      status: 'active',
      revokedAt: null,
    });
    const read = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/APP_A',
      headers: bearer(victim.token),
    });
    expect(read.statusCode, read.body).toBe(200);
  });

  it('admin JWTs keep full access to every endpoint', async () => {
    await seed('APP_A');
    const other = await createAccessKey(t, { scopes: ['secrets:read'] });
    for (const e of endpoints) {
      const payload =
        'body' in e
          ? e.body === 'create'
            ? { key: 'APP_NEW', value: secretValue() }
            : e.body === 'update'
              ? { value: secretValue() }
              : { name: 'x', scopes: ['secrets:read'] }
          : undefined;
      const res = await t.app.inject({
        method: e.method,
        url: e.url.replace('OTHER', other.id),
        headers: t.auth(),
        ...(payload ? { payload } : {}),
      });
      expect(res.statusCode, `${e.name}: ${res.body}`).toBe(e.ok);
    }
  });
});

describe('key patterns', () => {
  it('restricts reads, writes, deletes and the list to exact names and PREFIX_* patterns', async () => {
    const stripe = await seed('STRIPE_KEY');
    await seed('STRIPE_WEBHOOK');
    const db = await seed('DB_URL');
    await seed('DB_URL_REPLICA');
    await seed('OTHER');
    const k = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'],
      keys: ['STRIPE_*', 'DB_URL'],
    });
    const h = bearer(k.token);
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/secrets/STRIPE_KEY', headers: h })).json(),
    ).toEqual({
      key: 'STRIPE_KEY',
      value: stripe,
    });
    expect((await t.app.inject({ method: 'GET', url: '/api/secrets/DB_URL', headers: h })).json().value).toBe(
      db,
    );
    for (const key of ['OTHER', 'DB_URL_REPLICA', 'STRIPE']) {
      const r = await t.app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers: h });
      expect(r.statusCode, key).toBe(403);
      expect(r.json().message).toBe(
        `Access key "${k.name}" may not access secret ${key} (allowed: STRIPE_*, DB_URL)`,
      );
    }
    const put = await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/OTHER',
      headers: h,
      payload: { value: secretValue() },
    });
    expect(put.statusCode).toBe(403);
    const del = await t.app.inject({ method: 'DELETE', url: '/api/secrets/OTHER', headers: h });
    expect(del.statusCode).toBe(403);
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'NOT_MINE', value: secretValue() },
    });
    expect(post.statusCode).toBe(403);
    const postOk = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'STRIPE_NEW', value: secretValue() },
    });
    expect(postOk.statusCode).toBe(201);
    const list = await t.app.inject({ method: 'GET', url: '/api/secrets', headers: h });
    expect(
      list
        .json()
        .secrets.map((s: { key: string }) => s.key)
        .sort(),
    ).toEqual(['DB_URL', 'STRIPE_KEY', 'STRIPE_NEW', 'STRIPE_WEBHOOK']);
    // Pagination stays correct under the filter: the hidden keys never take a page slot.
    const p1 = (await t.app.inject({ method: 'GET', url: '/api/secrets?limit=3', headers: h })).json();
    expect(p1.secrets).toHaveLength(3);
    const p2 = (
      await t.app.inject({ method: 'GET', url: `/api/secrets?limit=3&cursor=${p1.nextCursor}`, headers: h })
    ).json();
    expect(p2.secrets).toHaveLength(1);
    expect(p2.nextCursor).toBeNull();
    // Nothing was changed by the refused requests.
    const rows = await t.db.query<{ key: string; is_active: boolean; current_version: number }>(
      `SELECT key, is_active, current_version FROM secrets WHERE key = 'OTHER'`,
    );
    expect(rows).toEqual([{ key: 'OTHER', is_active: true, current_version: 1 }]);
    const notMine = await t.db.query(`SELECT 1 FROM secrets WHERE key = 'NOT_MINE'`);
    expect(notMine).toHaveLength(0);
  });

  it('records lastUsedBy as the access key name', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { name: 'lambda', scopes: ['secrets:read', 'secrets:list'] });
    await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: apiKey(k.token) });
    const list = (await t.app.inject({ method: 'GET', url: '/api/secrets', headers: t.auth() })).json();
    expect(list.secrets[0].lastUsedBy).toBe('access_key:lambda');
  });
});

describe('authentication', () => {
  it('rejects a revoked key with 401 immediately, and revoking is idempotent', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: bearer(k.token) })).statusCode,
    ).toBe(200);
    const rev = await t.app.inject({ method: 'DELETE', url: `/api/access-keys/${k.id}`, headers: t.auth() });
    expect(rev.statusCode).toBe(200);
    expect(rev.json().status).toBe('revoked');
    const r = await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: bearer(k.token) });
    expect(r.statusCode).toBe(401);
    expect(r.json()).toMatchObject({ error: 'AUTH_UNAUTHORIZED' });
    expect(r.json().message).toContain('revoked');
    const again = await t.app.inject({
      method: 'DELETE',
      url: `/api/access-keys/${k.id}`,
      headers: t.auth(),
    });
    expect(again.statusCode).toBe(200);
    expect(again.json().revokedAt).toBe(rev.json().revokedAt);
    const missing = await t.app.inject({
      method: 'DELETE',
      url: '/api/access-keys/00000000-0000-4000-8000-000000000000',
      headers: t.auth(),
    });
    expect(missing.statusCode).toBe(404);
    const bad = await t.app.inject({ method: 'DELETE', url: '/api/access-keys/nope', headers: t.auth() });
    expect(bad.statusCode).toBe(400);
  });

  it('rejects an expired key with 401', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, {
      scopes: ['secrets:read'],
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    });
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: apiKey(k.token) })).statusCode,
    ).toBe(200);
    await t.db.query(`UPDATE access_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [k.id]);
    const r = await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: apiKey(k.token) });
    expect(r.statusCode).toBe(401);
    expect(r.json().message).toContain('expired');
    const list = (await t.app.inject({ method: 'GET', url: '/api/access-keys', headers: t.auth() })).json();
    expect(list.accessKeys[0].status).toBe('expired');
  });

  it('rejects unknown, altered and malformed tokens, and two credentials at once, with 401', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    const last = k.token.at(-1) === '0' ? '1' : '0';
    const altered = k.token.slice(0, -1) + last;
    for (const headers of [
      bearer(altered),
      apiKey(altered),
      apiKey(`ik_${'0'.repeat(64)}`),
      apiKey('ik_short'),
      apiKey(k.token.toUpperCase()),
      { ...bearer(k.token), ...apiKey(k.token) },
    ]) {
      const r = await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers });
      expect(r.statusCode, JSON.stringify(headers)).toBe(401);
      expect(r.body).not.toContain(k.token.slice(11));
    }
  });

  it('gives a near-miss token and a far-miss token the same answer (lookup by digest, no prefix oracle)', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    const near = k.token.slice(0, -1) + (k.token.at(-1) === 'f' ? 'e' : 'f');
    const far = `ik_${'f'.repeat(64)}`;
    const a = await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: apiKey(near) });
    const b = await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: apiKey(far) });
    expect(a.statusCode).toBe(401);
    expect(a.json()).toEqual(b.json());
    expect(a.json().message).toBe('Invalid token: unknown access key');
    // What is stored is the SHA-256 of the token, which the lookup compares.
    const rows = await t.db.query<{ ok: boolean }>(
      `SELECT token_hash = sha256(convert_to($1, 'UTF8')) AS ok FROM access_keys WHERE id = $2`,
      [k.token, k.id],
    );
    expect(rows[0]?.ok).toBe(true);
  });

  it('updates lastUsedAt on use', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: bearer(k.token) });
    const list = (await t.app.inject({ method: 'GET', url: '/api/access-keys', headers: t.auth() })).json();
    expect(Date.parse(list.accessKeys[0].lastUsedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('never stores the token in plain text (plain SQL over every table)', async () => {
    await seed('APP_A');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    await t.app.inject({ method: 'GET', url: '/api/secrets/APP_A', headers: bearer(k.token) });
    await t.app.inject({ method: 'GET', url: '/api/audit/verify', headers: t.auth() });
    const secretPart = k.token.slice(11); // everything after the displayed prefix
    const tables = await t.db.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`,
    );
    expect(tables.map((x) => x.tablename)).toEqual(expect.arrayContaining(['access_keys', 'audit_log']));
    for (const { tablename } of tables) {
      const rows = await t.db.query<{ row: string }>(`SELECT t::text AS row FROM ${tablename} t`);
      for (const { row } of rows) {
        expect(row, tablename).not.toContain(secretPart);
        expect(row, tablename).not.toContain(Buffer.from(k.token).toString('hex'));
      }
    }
    const stored = await t.db.query<{ token_hash: Buffer; token_prefix: string }>(
      'SELECT token_hash, token_prefix FROM access_keys',
    );
    expect(stored[0]?.token_prefix).toBe(k.token.slice(0, 11));
    expect(stored[0]?.token_hash.length).toBe(32);
  });
});
