import { describe, expect, it } from 'vitest';
import { createTestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';

// Issue 10: one row per secret touched, on every route that reveals or changes secret
// material, written through the group-committed writer (reads) or the change's own
// statement (writes); a failed batch fails every waiting read closed.
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });

interface Row {
  actor: string;
  action: string;
  key: string | null;
  version: number | null;
  outcome: string;
  request_id: string | null;
  client_request_id: boolean;
}

const rowsOf = (actor: string) =>
  t.db.query<Row>(
    `SELECT actor, action, key, version, outcome, request_id, client_request_id FROM audit_log
     WHERE actor = $1 ORDER BY id`,
    [actor],
  );

const admin = api(t);

async function create(key: string, value = secretValue()) {
  expect((await admin.create({ key, value })).statusCode).toBe(201);
  return value;
}

describe('one row per read', () => {
  it('200 concurrent reads of one key leave exactly 200 success read rows', async () => {
    const value = await create('PIPE_HOT');
    const h = t.auth('storm');
    const rs = await Promise.all(
      Array.from({ length: 200 }, () =>
        t.app.inject({ method: 'GET', url: '/api/secrets/PIPE_HOT', headers: h }),
      ),
    );
    for (const r of rs) {
      expect(r.statusCode).toBe(200);
      expect(r.json().value).toBe(value);
    }
    const rows = await rowsOf('admin:storm');
    expect(rows).toHaveLength(200);
    expect(
      rows.every((r) => r.action === 'secret.read' && r.key === 'PIPE_HOT' && r.outcome === 'success'),
    ).toBe(true);
    // Each request's own id: 200 distinct rows, not one row counted 200 times.
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(200);
    // lastUsedAt/lastUsedBy written by the batches, to the second.
    const s = await t.db.query<{ last_used_by: string; fresh: boolean }>(
      `SELECT last_used_by, last_used_at > now() - interval '1 minute' AS fresh FROM secrets WHERE key = 'PIPE_HOT'`,
    );
    expect(s[0]).toEqual({ last_used_by: 'storm', fresh: true });
  });

  it('records the outcome of refused reads: not_found, inactive, expired', async () => {
    await create('PIPE_GONE');
    await t.app.inject({ method: 'DELETE', url: '/api/secrets/PIPE_GONE', headers: t.auth() });
    await create('PIPE_OLD');
    await t.db.query(`UPDATE secrets SET expires_at = now() - interval '1 day' WHERE key = 'PIPE_OLD'`);
    const h = t.auth('refused');
    for (const key of ['PIPE_NOPE', 'PIPE_GONE', 'PIPE_OLD']) {
      const r = await t.app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers: h });
      expect(r.statusCode).toBe(404);
    }
    expect((await rowsOf('admin:refused')).map((r) => [r.key, r.outcome])).toEqual([
      ['PIPE_NOPE', 'not_found'],
      ['PIPE_GONE', 'inactive'],
      ['PIPE_OLD', 'expired'],
    ]);
  });

  it('marks a request id the client chose', async () => {
    await create('PIPE_RID');
    await t.app.inject({
      method: 'GET',
      url: '/api/secrets/PIPE_RID',
      headers: { ...t.auth('rid'), 'x-request-id': 'client-chosen-1' },
    });
    await t.app.inject({ method: 'GET', url: '/api/secrets/PIPE_RID', headers: t.auth('rid') });
    const rows = await rowsOf('admin:rid');
    expect(rows.map((r) => [r.request_id === 'client-chosen-1', r.client_request_id])).toEqual([
      [true, true],
      [false, false],
    ]);
  });
});

describe('one row per secret touched', () => {
  it('versions, export, render, rollback, restore and purge name every secret they touched', async () => {
    await create('PIPE_A');
    await create('PIPE_B');
    await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/PIPE_A',
      headers: t.auth(),
      payload: { value: secretValue() },
    });
    const exportable = (
      await t.db.query<{ key: string }>(
        `SELECT key FROM secrets WHERE starts_with(key, 'PIPE_') AND is_active
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY key`,
      )
    )
      .map((r) => r.key)
      .sort();
    expect(exportable).toEqual(expect.arrayContaining(['PIPE_A', 'PIPE_B']));
    const h = t.auth('toucher');
    const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
      const r = await t.app.inject({ method, url, headers: h, ...(payload ? { payload } : {}) });
      expect(r.statusCode, `${method} ${url}: ${r.body}`).toBe(200);
    };
    await call('GET', '/api/secrets/PIPE_A/versions');
    await call('GET', '/api/secrets/export?prefix=PIPE_&format=json');
    await call('POST', '/api/secrets/render', { template: '{{Secrets.PIPE_A}} {{secrets.pipe_b}}' });
    await call('POST', '/api/secrets/PIPE_A/rollback', { version: 1 });
    await call('DELETE', '/api/secrets/PIPE_B');
    await call('POST', '/api/secrets/PIPE_B/restore');
    await call('DELETE', '/api/secrets/PIPE_B');
    await call('DELETE', '/api/secrets/PIPE_B?purge=true');
    const rows = (await rowsOf('admin:toucher')).map((r) => [r.action, r.key, r.outcome]);
    const exported = rows.filter((r) => r[0] === 'secret.export');
    // The export named each secret it returned, and nothing else.
    expect(exported.map((r) => r[1]).sort()).toEqual(exportable);
    expect(exported.every((r) => r[2] === 'success')).toBe(true);
    expect(rows.filter((r) => r[0] !== 'secret.export')).toEqual([
      ['secret.versions', 'PIPE_A', 'success'],
      ['secret.render', 'PIPE_A', 'success'],
      ['secret.render', 'PIPE_B', 'success'],
      ['secret.rollback', 'PIPE_A', 'success'],
      ['secret.delete', 'PIPE_B', 'success'],
      ['secret.restore', 'PIPE_B', 'success'],
      ['secret.delete', 'PIPE_B', 'success'],
      ['secret.purge', 'PIPE_B', 'success'],
    ]);
  });

  it('a render refused for unresolved references leaves one row: the missing name, or their count and a bounded list', async () => {
    await create('PIPE_R1');
    const render = (template: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/secrets/render',
        headers: t.auth('renderer'),
        payload: { template },
      });
    const one = await render('{{Secrets.PIPE_R1}} {{Secrets.PIPE_R_MISSING}}');
    expect(one.statusCode).toBe(400);
    // Nothing was opened, so nothing is withheld: one row naming the missing secret.
    expect((await rowsOf('admin:renderer')).map((x) => [x.key, x.outcome])).toEqual([
      ['PIPE_R_MISSING', 'not_found'],
    ]);
    const names = Array.from({ length: 300 }, (_, i) => `PIPE_GONE_${i}`);
    const many = await render(['{{Secrets.PIPE_R1}}', ...names.map((n) => `{{Secrets.${n}}}`)].join(' '));
    expect(many.statusCode).toBe(400);
    const rows = (await rowsOf('admin:renderer')).slice(1);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe('not_found');
    expect(rows[0]!.key).toMatch(/^300 names: PIPE_GONE_0, PIPE_GONE_1, .*, \+\d+ more$/);
    expect(rows[0]!.key!.length).toBeLessThanOrEqual(256);
  });

  it('records refused changes: 404, 409, 412', async () => {
    await create('PIPE_C');
    const h = t.auth('changer');
    const r404 = await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/PIPE_NONE',
      headers: h,
      payload: { description: 'x' },
    });
    expect(r404.statusCode).toBe(404);
    const r409 = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'PIPE_C', value: secretValue() },
    });
    expect(r409.statusCode).toBe(409);
    const r412 = await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/PIPE_C',
      headers: { ...h, 'if-match': '"stale"' },
      payload: { description: 'x' },
    });
    expect(r412.statusCode).toBe(412);
    expect((await rowsOf('admin:changer')).map((x) => [x.action, x.key, x.outcome])).toEqual([
      ['secret.update', 'PIPE_NONE', 'not_found'],
      ['secret.create', 'PIPE_C', 'conflict'],
      ['secret.update', 'PIPE_C', 'precondition_failed'],
    ]);
  });
});

describe('fail closed', () => {
  it('a tampered ciphertext fails the read closed and its row says decrypt_failed', async () => {
    const value = await create('PIPE_TAMPER');
    await t.db.query(
      `UPDATE secret_versions SET ciphertext = decode(md5(random()::text), 'hex')
       WHERE secret_id = (SELECT id FROM secrets WHERE key = 'PIPE_TAMPER')`,
    );
    const r = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/PIPE_TAMPER',
      headers: t.auth('tamper'),
    });
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toBe('DECRYPTION_FAILED');
    expect(r.body).not.toContain(value);
    expect((await rowsOf('admin:tamper')).map((x) => [x.key, x.outcome])).toEqual([
      ['PIPE_TAMPER', 'decrypt_failed'],
    ]);
  });

  it('when the batch cannot be committed every waiting read gets 503 and no value', async () => {
    await create('PIPE_FC');
    await t.db.query(
      `ALTER TABLE audit_log ADD CONSTRAINT test_pipe_fc CHECK (actor <> 'admin:blocked') NOT VALID`,
    );
    try {
      const h = t.auth('blocked');
      const rs = await Promise.all(
        Array.from({ length: 30 }, () =>
          t.app.inject({ method: 'GET', url: '/api/secrets/PIPE_FC', headers: h }),
        ),
      );
      for (const r of rs) {
        expect(r.statusCode).toBe(503);
        expect(r.json().error).toBe('SERVICE_UNAVAILABLE');
        for (const v of issuedValues) expect(r.body).not.toContain(v);
      }
    } finally {
      await t.db.query('ALTER TABLE audit_log DROP CONSTRAINT test_pipe_fc');
    }
    // Recovers by itself: the next batch commits.
    const ok = await t.app.inject({ method: 'GET', url: '/api/secrets/PIPE_FC', headers: t.auth('blocked') });
    expect(ok.statusCode).toBe(200);
    expect(await rowsOf('admin:blocked')).toHaveLength(1);
  });
});

describe('refused attempts', () => {
  it('a read over the read limit (429) leaves a rate_limited row', async () => {
    const limited = await createTestApp({ env: { READ_RATE_LIMIT: '1', AUDIT_SEAL_INTERVAL_MS: '0' } });
    try {
      await limited.app.inject({
        method: 'POST',
        url: '/api/secrets',
        headers: limited.auth(),
        payload: { key: 'PIPE_RL', value: secretValue() },
      });
      const h = limited.auth('hasty');
      expect(
        (await limited.app.inject({ method: 'GET', url: '/api/secrets/PIPE_RL', headers: h })).statusCode,
      ).toBe(200);
      expect(
        (await limited.app.inject({ method: 'GET', url: '/api/secrets/PIPE_RL', headers: h })).statusCode,
      ).toBe(429);
      const rows = await limited.db.query<{ outcome: string }>(
        `SELECT outcome FROM audit_log WHERE actor = 'admin:hasty' ORDER BY id`,
      );
      expect(rows.map((r) => r.outcome)).toEqual(['success', 'rate_limited']);
    } finally {
      await limited.close();
    }
  });
});
