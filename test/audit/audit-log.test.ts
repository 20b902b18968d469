import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';

// No background sealing: the tests decide when the chain is sealed.
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' }, resetEachTest: true });

interface Row {
  id: string;
  actor: string;
  action: string;
  key: string | null;
  version: number | null;
  outcome: string;
  request_id: string | null;
  client_ip: string | null;
}

/** Sends a request with its own request id and returns the response with the audit rows it left. */
async function call(opts: {
  method: string;
  url: string;
  headers?: Record<string, string>;
  payload?: unknown;
}) {
  const rid = `rid-${randomUUID()}`;
  const res = await t.app.inject({
    method: opts.method as 'GET',
    url: opts.url,
    headers: { ...(opts.headers ?? t.auth('auditor')), 'x-request-id': rid },
    ...(opts.payload ? { payload: opts.payload as object } : {}),
  });
  const rows = await t.db.query<Row>(
    `SELECT id::text AS id, actor, action, key, version, outcome, request_id, client_ip FROM audit_log WHERE request_id = $1`,
    [rid],
  );
  return { res, rows, rid };
}

const seed = async (key: string, extra: Record<string, unknown> = {}) =>
  expect(
    (
      await t.app.inject({
        method: 'POST',
        url: '/api/secrets',
        headers: t.auth(),
        payload: { key, value: secretValue(), ...extra },
      })
    ).statusCode,
  ).toBe(201);

async function noValueInAuditLog() {
  const rows = await t.db.query<{ row: string }>('SELECT a::text AS row FROM audit_log a');
  for (const { row } of rows) for (const v of issuedValues) expect(row).not.toContain(v);
}

describe('one row per action', () => {
  it('records every secret action with its fields, never a value', async () => {
    const v1 = secretValue();
    const cases: Array<{
      req: Parameters<typeof call>[0];
      status: number;
      row: Partial<Row>;
    }> = [
      {
        req: { method: 'POST', url: '/api/secrets', payload: { key: 'AUD_A', value: v1 } },
        status: 201,
        row: { action: 'secret.create', key: 'AUD_A', version: 1, outcome: 'success' },
      },
      {
        req: { method: 'POST', url: '/api/secrets', payload: { key: 'AUD_A', value: secretValue() } },
        status: 409,
        row: { action: 'secret.create', key: 'AUD_A', version: null, outcome: 'conflict' },
      },
      {
        req: { method: 'GET', url: '/api/secrets/AUD_A' },
        status: 200,
        row: { action: 'secret.read', key: 'AUD_A', version: 1, outcome: 'success' },
      },
      {
        req: { method: 'GET', url: '/api/secrets/AUD_MISSING' },
        status: 404,
        row: { action: 'secret.read', key: 'AUD_MISSING', version: null, outcome: 'not_found' },
      },
      {
        req: { method: 'PUT', url: '/api/secrets/AUD_A', payload: { value: secretValue() } },
        status: 200,
        row: { action: 'secret.update', key: 'AUD_A', version: 2, outcome: 'success' },
      },
      {
        req: { method: 'PUT', url: '/api/secrets/AUD_A', payload: { description: 'meta only' } },
        status: 200,
        row: { action: 'secret.update', key: 'AUD_A', version: 2, outcome: 'success' },
      },
      {
        req: { method: 'PUT', url: '/api/secrets/AUD_MISSING', payload: { value: secretValue() } },
        status: 404,
        row: { action: 'secret.update', key: 'AUD_MISSING', outcome: 'not_found' },
      },
      {
        req: { method: 'GET', url: '/api/secrets?prefix=AUD' },
        status: 200,
        row: { action: 'secret.list', key: 'AUD', outcome: 'success' },
      },
      {
        req: { method: 'DELETE', url: '/api/secrets/AUD_A' },
        status: 200,
        row: { action: 'secret.delete', key: 'AUD_A', version: 2, outcome: 'success' },
      },
      {
        req: { method: 'GET', url: '/api/secrets/AUD_A' },
        status: 404,
        row: { action: 'secret.read', key: 'AUD_A', version: 2, outcome: 'inactive' },
      },
      {
        req: { method: 'GET', url: '/api/secrets/AUD_A', headers: { authorization: 'Bearer nope' } },
        status: 401,
        row: { action: 'auth.failed', key: 'AUD_A', outcome: 'unauthenticated', actor: 'anonymous' },
      },
      {
        req: { method: 'GET', url: '/api/secrets', headers: {} },
        status: 401,
        row: { action: 'auth.failed', key: null, outcome: 'unauthenticated', actor: 'anonymous' },
      },
    ];
    for (const c of cases) {
      const { res, rows, rid } = await call(c.req);
      expect(res.statusCode, `${c.req.method} ${c.req.url}: ${res.body}`).toBe(c.status);
      expect(rows, `${c.req.method} ${c.req.url}`).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        actor: 'admin:auditor',
        request_id: rid,
        client_ip: '127.0.0.1',
        ...c.row,
      });
    }
    await seed('AUD_RES', { isReserved: true });
    const reserved = await call({ method: 'DELETE', url: '/api/secrets/AUD_RES' });
    expect(reserved.res.statusCode).toBe(403);
    expect(reserved.rows).toEqual([
      expect.objectContaining({ action: 'secret.delete', outcome: 'forbidden' }),
    ]);
    await noValueInAuditLog();
  });

  it('records access-key actions and denials with the key as actor', async () => {
    const created = await call({
      method: 'POST',
      url: '/api/access-keys',
      payload: { name: 'ci', scopes: ['secrets:read'] },
    });
    expect(created.rows).toEqual([
      expect.objectContaining({
        action: 'access_key.create',
        actor: 'admin:auditor',
        key: `access_key:${created.res.json().id}`,
        outcome: 'success',
      }),
    ]);
    const token = created.res.json().token as string;
    const listed = await call({ method: 'GET', url: '/api/access-keys' });
    expect(listed.rows).toEqual([expect.objectContaining({ action: 'access_key.list', outcome: 'success' })]);
    await seed('AUD_K');
    const read = await call({ method: 'GET', url: '/api/secrets/AUD_K', headers: apiKey(token) });
    expect(read.rows).toEqual([
      expect.objectContaining({
        action: 'secret.read',
        actor: `access_key:${created.res.json().id}`,
        outcome: 'success',
      }),
    ]);
    const denied = await call({ method: 'DELETE', url: '/api/secrets/AUD_K', headers: apiKey(token) });
    expect(denied.res.statusCode).toBe(403);
    expect(denied.rows).toEqual([
      expect.objectContaining({ action: 'secret.delete', key: 'AUD_K', outcome: 'denied' }),
    ]);
    const revoked = await call({ method: 'DELETE', url: `/api/access-keys/${created.res.json().id}` });
    expect(revoked.rows).toEqual([
      expect.objectContaining({ action: 'access_key.revoke', outcome: 'success' }),
    ]);
    const after = await call({ method: 'GET', url: '/api/secrets/AUD_K', headers: apiKey(token) });
    expect(after.res.statusCode).toBe(401);
    expect(after.rows).toEqual([expect.objectContaining({ action: 'auth.failed', actor: 'anonymous' })]);
    // The token never reaches the audit log either.
    const all = await t.db.query<{ row: string }>('SELECT a::text AS row FROM audit_log a');
    for (const { row } of all) expect(row).not.toContain(token.slice(3));
  });
});

describe('fail closed', () => {
  it('a read whose audit row cannot be written fails and returns nothing', async () => {
    await seed('AUD_FC');
    await t.db.query(
      `ALTER TABLE audit_log ADD CONSTRAINT test_no_reads CHECK (action <> 'secret.read') NOT VALID`,
    );
    try {
      const r = await t.app.inject({ method: 'GET', url: '/api/secrets/AUD_FC', headers: t.auth('reader') });
      // The group-committed batch failed: its waiters fail closed with 503 and no value.
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual(expect.objectContaining({ error: 'SERVICE_UNAVAILABLE' }));
      for (const v of issuedValues) expect(r.body).not.toContain(v);
      // The batch is one statement: its lastUsed stamp rolled back with the audit rows.
      const s = await t.db.query<{ last_used_by: string | null }>(
        `SELECT last_used_by FROM secrets WHERE key = 'AUD_FC'`,
      );
      expect(s[0]?.last_used_by).toBeNull();
    } finally {
      await t.db.query('ALTER TABLE audit_log DROP CONSTRAINT test_no_reads');
    }
    const ok = await t.app.inject({ method: 'GET', url: '/api/secrets/AUD_FC', headers: t.auth('reader') });
    expect(ok.statusCode).toBe(200);
  });

  it('a change whose audit row cannot be written is rolled back', async () => {
    await seed('AUD_FW');
    await t.db.query(
      `ALTER TABLE audit_log ADD CONSTRAINT test_no_updates CHECK (action <> 'secret.update') NOT VALID`,
    );
    try {
      const r = await t.app.inject({
        method: 'PUT',
        url: '/api/secrets/AUD_FW',
        headers: t.auth(),
        payload: { value: secretValue() },
      });
      expect(r.statusCode).toBe(500);
      const s = await t.db.query<{ current_version: number }>(
        `SELECT current_version FROM secrets WHERE key = 'AUD_FW'`,
      );
      expect(s[0]?.current_version).toBe(1);
    } finally {
      await t.db.query('ALTER TABLE audit_log DROP CONSTRAINT test_no_updates');
    }
  });
});

describe('GET /api/audit', () => {
  it('filters by key, actor, action and time, newest first, with keyset pagination', async () => {
    const start = new Date();
    await seed('AUD_F1');
    await seed('AUD_F2');
    for (let i = 0; i < 3; i++) {
      await t.app.inject({ method: 'GET', url: '/api/secrets/AUD_F1', headers: t.auth('bob') });
    }
    const get = async (qs: string) => {
      const r = await t.app.inject({ method: 'GET', url: `/api/audit?${qs}`, headers: t.auth() });
      expect(r.statusCode, r.body).toBe(200);
      return r.json();
    };
    const byKey = await get('key=AUD_F1');
    expect(byKey.entries.map((e: { action: string }) => e.action)).toEqual([
      'secret.read',
      'secret.read',
      'secret.read',
      'secret.create',
    ]);
    expect(byKey.entries[0]).toMatchObject({
      actor: 'admin:bob',
      key: 'AUD_F1',
      version: 1,
      outcome: 'success',
      sealed: false,
      hash: null,
    });
    expect((await get('actor=admin:bob')).entries).toHaveLength(3);
    expect((await get('action=secret.create')).entries).toHaveLength(2);
    expect(
      (await get(`from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).entries,
    ).toHaveLength(0);
    expect((await get(`from=${encodeURIComponent(start.toISOString())}&key=AUD_F2`)).entries).toHaveLength(1);
    expect((await get(`to=${encodeURIComponent(start.toISOString())}`)).entries).toHaveLength(0);

    const p1 = await get('limit=2');
    expect(p1.entries).toHaveLength(2);
    const p2 = await get(`limit=2&cursor=${p1.nextCursor}`);
    const p3 = await get(`limit=2&cursor=${p2.nextCursor}`);
    const seen = [...p1.entries, ...p2.entries, ...p3.entries].map((e: { id: string }) => Number(e.id));
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(new Set(seen).size).toBe(5);
    expect(p3.nextCursor).toBeNull();

    const bad = await t.app.inject({ method: 'GET', url: '/api/audit?from=yesterday', headers: t.auth() });
    expect(bad.statusCode).toBe(400);
    const badCursor = await t.app.inject({ method: 'GET', url: '/api/audit?cursor=xyz', headers: t.auth() });
    expect(badCursor.statusCode).toBe(400);
  });

  it('takes several actions, or actions to leave out, without removing a row from the trail', async () => {
    await seed('AUD_L1');
    for (const url of ['/api/secrets', '/api/secrets/AUD_L1', '/api/secrets/AUD_L1/versions', '/api/secrets'])
      expect((await t.app.inject({ method: 'GET', url, headers: t.auth('carol') })).statusCode).toBe(200);
    const actions = async (qs: string) => {
      const r = await t.app.inject({ method: 'GET', url: `/api/audit?${qs}`, headers: t.auth() });
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as { entries: { action: string }[] }).entries.map((e) => e.action);
    };
    const all = await actions('actor=admin:carol');
    expect(all).toEqual(['secret.list', 'secret.versions', 'secret.read', 'secret.list']);
    expect(await actions('actor=admin:carol&action=secret.read,secret.versions')).toEqual([
      'secret.versions',
      'secret.read',
    ]);
    // Spaces and a trailing comma, as a person types them.
    expect(await actions('actor=admin:carol&action=secret.list%2C%20')).toEqual([
      'secret.list',
      'secret.list',
    ]);
    expect(await actions('actor=admin:carol&excludeAction=secret.list,secret.versions')).toEqual([
      'secret.read',
    ]);
    expect(await actions('excludeAction=secret.list,secret.versions&action=secret.create')).toEqual([
      'secret.create',
    ]);
    // Leaving rows out of a page removes none from the log: the unfiltered view still has them.
    expect(await actions('actor=admin:carol')).toEqual(all);

    const before = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
    for (const [qs, field] of [
      ['action=', 'action'],
      ['excludeAction=%2C%2C', 'excludeAction'],
      [`action=${Array.from({ length: 21 }, (_, i) => `a${i}`).join(',')}`, 'action'],
      [`excludeAction=${'x'.repeat(65)}`, 'excludeAction'],
      ['action=secret.read%00', 'action'],
    ] as const) {
      const r = await t.app.inject({ method: 'GET', url: `/api/audit?${qs}`, headers: t.auth() });
      expect(r.statusCode, qs).toBe(400);
      expect(r.json().message, qs).toContain(field);
    }
    // Reading the audit log writes no audit row, refused or not.
    expect(await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')).toEqual(before);
  });
});
