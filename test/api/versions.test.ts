import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const MAX_VERSIONS = 5;
const t = useTestApp({ env: { MAX_VERSIONS: String(MAX_VERSIONS) }, resetEachTest: true });

const { req } = api(t);
const create = (key: string, value: string) => req('POST', '/api/secrets', { key, value });
const put = (key: string, body: object, headers = {}) => req('PUT', `/api/secrets/${key}`, body, headers);
const read = (key: string, version?: number | string) =>
  req('GET', `/api/secrets/${key}${version === undefined ? '' : `?version=${version}`}`);
const count = async (sql: string, params: unknown[] = []) =>
  (await t.db.query<{ n: number }>(sql, params))[0]?.n;
const history = async (key: string) => {
  const r = await req('GET', `/api/secrets/${key}/versions`);
  expect(r.statusCode).toBe(200);
  return r.json() as {
    key: string;
    currentVersion: number;
    versions: {
      version: number;
      createdAt: string;
      createdBy: string | null;
      kid: string;
      current: boolean;
    }[];
  };
};

describe('version history', () => {
  it('keeps every value as a version, readable by number, listed newest first without values', async () => {
    const v1 = secretValue('v1');
    const v2 = secretValue('v2');
    const v3 = secretValue('v3');
    expect((await create('HIST', v1)).statusCode).toBe(201);
    expect((await put('HIST', { value: v2 })).statusCode).toBe(200);
    // A metadata-only change is not a new version.
    expect((await put('HIST', { description: 'd' })).statusCode).toBe(200);
    expect(
      (
        await t.app.inject({
          method: 'PUT',
          url: '/api/secrets/HIST',
          headers: t.auth('bob'),
          payload: { value: v3 },
        })
      ).statusCode,
    ).toBe(200);

    const h = await history('HIST');
    expect(h.currentVersion).toBe(3);
    expect(h.versions.map((v) => [v.version, v.current, v.createdBy, v.kid])).toEqual([
      [3, true, 'bob', 'k1'],
      [2, false, 'test-admin', 'k1'],
      [1, false, 'test-admin', 'k1'],
    ]);
    const raw = JSON.stringify(h);
    for (const v of [v1, v2, v3]) expect(raw).not.toContain(v);

    expect((await read('HIST', 1)).json()).toEqual({ key: 'HIST', value: v1 });
    expect((await read('HIST', 2)).json()).toEqual({ key: 'HIST', value: v2 });
    expect((await read('HIST', 3)).json()).toEqual({ key: 'HIST', value: v3 });
    expect((await read('HIST')).json()).toEqual({ key: 'HIST', value: v3 });
    const list = (await req('GET', '/api/secrets')).json();
    expect(list.secrets[0].version).toBe(3);
  });

  it('rollback stores the old value as a new version, history intact', async () => {
    const v1 = secretValue('r1');
    const v2 = secretValue('r2');
    await create('ROLL', v1);
    await put('ROLL', { value: v2 });
    const r = await req('POST', '/api/secrets/ROLL/rollback', { version: 1 });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ success: true, version: 3 });
    expect(r.headers.etag).toMatch(/^".+"$/);
    expect((await read('ROLL')).json().value).toBe(v1);
    expect((await read('ROLL', 2)).json().value).toBe(v2);
    expect((await history('ROLL')).versions.map((v) => v.version)).toEqual([3, 2, 1]);
    // The rolled-back copy is a fresh seal under its own number, not a copy of version 1's bytes.
    const rows = await t.db.query<{ version: number; ciphertext: Buffer }>(
      `SELECT v.version, v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
       WHERE s.key = 'ROLL' ORDER BY v.version`,
    );
    expect(rows[0]!.ciphertext.equals(rows[2]!.ciphertext)).toBe(false);

    const missing = await req('POST', '/api/secrets/ROLL/rollback', { version: 9 });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toBe('Secret not found: ROLL has no version 9');
    expect((await req('POST', '/api/secrets/NOPE/rollback', { version: 1 })).statusCode).toBe(404);
    for (const body of [
      {},
      { version: 0 },
      { version: -1 },
      { version: 1.5 },
      { version: '1' },
      { version: 1, x: 1 },
    ]) {
      const bad = await req('POST', '/api/secrets/ROLL/rollback', body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
      expect(bad.json().error).toBe('INVALID_INPUT');
    }
    expect((await history('ROLL')).currentVersion).toBe(3);
  });

  it(`pruning keeps exactly MAX_VERSIONS (${MAX_VERSIONS}); pruned versions are 404`, async () => {
    const values = [secretValue('p')];
    await create('PRUNE', values[0]!);
    for (let i = 2; i <= 12; i++) {
      const v = secretValue(`p${i}`);
      values.push(v);
      expect((await put('PRUNE', { value: v })).statusCode).toBe(200);
      const kept = (await history('PRUNE')).versions.map((x) => x.version);
      expect(kept).toEqual(Array.from({ length: Math.min(i, MAX_VERSIONS) }, (_, k) => i - k));
    }
    // Rollback and revive add versions too, and prune in the same way.
    expect((await req('POST', '/api/secrets/PRUNE/rollback', { version: 9 })).statusCode).toBe(200);
    expect((await history('PRUNE')).versions.map((x) => x.version)).toEqual([13, 12, 11, 10, 9]);
    const n = await count(
      `SELECT count(*)::int AS n FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.key = 'PRUNE'`,
    );
    expect(n).toBe(MAX_VERSIONS);
    expect((await read('PRUNE', 13)).json().value).toBe(values[8]);
    const pruned = await read('PRUNE', 8);
    expect(pruned.statusCode).toBe(404);
    expect(pruned.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: PRUNE has no version 8',
    });
    expect((await read('PRUNE', 99)).statusCode).toBe(404);
    expect((await req('POST', '/api/secrets/PRUNE/rollback', { version: 1 })).statusCode).toBe(404);
  });

  it('bad version numbers are 400 and unknown keys 404', async () => {
    await create('BADV', secretValue());
    for (const v of ['0', '-1', '1.5', 'abc', '99999999999', '2147483648', '1e3', '0x10', '', '%201']) {
      const r = await read('BADV', v);
      expect(r.statusCode, v).toBe(400);
      expect(r.json().error).toBe('INVALID_INPUT');
      expect(r.json().message).toContain('version must be a whole number');
    }
    expect((await read('BADV', 2147483647)).statusCode).toBe(404);
    expect((await read('NOPE', 1)).statusCode).toBe(404);
    expect((await req('GET', '/api/secrets/NOPE/versions')).statusCode).toBe(404);
    expect((await req('GET', '/api/secrets/bad-key/versions')).statusCode).toBe(400);
  });

  it('reading a version of an inactive or expired secret follows the same 404 rules', async () => {
    await create('GONE', secretValue());
    await put('GONE', { value: secretValue() });
    await req('DELETE', '/api/secrets/GONE');
    const r = await read('GONE', 1);
    expect(r.statusCode).toBe(404);
    expect(r.json().message).toBe('Secret not found: GONE is inactive');
    await req('POST', '/api/secrets', {
      key: 'OLD',
      value: secretValue(),
      expiresAt: '2001-01-01T00:00:00Z',
    });
    const e = await read('OLD', 1);
    expect(e.statusCode).toBe(404);
    expect(e.json().message).toContain('expired at 2001-01-01T00:00:00.000Z');
    // The history itself (no values) stays visible for both.
    expect((await history('GONE')).versions).toHaveLength(2);
  });
});

describe('restore and purge', () => {
  it('restore reactivates a soft-deleted secret with its history', async () => {
    const v1 = secretValue();
    const v2 = secretValue();
    await create('REST', v1);
    await put('REST', { value: v2 });
    expect((await req('DELETE', '/api/secrets/REST')).statusCode).toBe(200);
    expect((await read('REST')).statusCode).toBe(404);
    const r = await req('POST', '/api/secrets/REST/restore');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ success: true, message: 'Secret REST has been restored successfully' });
    expect((await read('REST')).json().value).toBe(v2);
    expect((await read('REST', 1)).json().value).toBe(v1);
    expect((await history('REST')).currentVersion).toBe(2);
    // Restoring an active secret changes nothing (same ETag).
    const again = await req('POST', '/api/secrets/REST/restore');
    expect(again.statusCode).toBe(200);
    expect(again.headers.etag).toBe(r.headers.etag);
    expect((await req('POST', '/api/secrets/NOPE/restore')).statusCode).toBe(404);
  });

  it('a soft-deleted name never blocks re-creation: revive keeps the history', async () => {
    const v1 = secretValue();
    const v2 = secretValue();
    await create('REVIVE', v1);
    await req('DELETE', '/api/secrets/REVIVE');
    expect((await create('REVIVE', v2)).statusCode).toBe(201);
    expect((await history('REVIVE')).versions.map((v) => v.version)).toEqual([2, 1]);
    expect((await read('REVIVE', 1)).json().value).toBe(v1);
  });

  it('purge refuses active and reserved secrets and erases an inactive one without a trace', async () => {
    const value = secretValue();
    const c = await create('PURGE_ME', value);
    const id = c.json().id as string;
    await put('PURGE_ME', { value: secretValue() });
    await create('KEEP_ME', secretValue());

    const active = await req('DELETE', '/api/secrets/PURGE_ME?purge=true');
    expect(active.statusCode).toBe(409);
    expect(active.json().message).toBe('Cannot purge active secret: PURGE_ME');
    expect((await read('PURGE_ME')).statusCode).toBe(200);

    await req('DELETE', '/api/secrets/PURGE_ME');
    await put('PURGE_ME', { isReserved: true });
    expect((await req('DELETE', '/api/secrets/PURGE_ME?purge=true')).statusCode).toBe(403);
    await put('PURGE_ME', { isReserved: false });
    expect((await req('DELETE', '/api/secrets/PURGE_ME?purge=maybe')).statusCode).toBe(400);

    const p = await req('DELETE', '/api/secrets/PURGE_ME?purge=true');
    expect(p.statusCode).toBe(200);
    expect(p.json()).toEqual({ success: true, message: 'Secret PURGE_ME has been purged permanently' });
    expect((await read('PURGE_ME')).statusCode).toBe(404);
    expect((await req('GET', '/api/secrets/PURGE_ME/versions')).statusCode).toBe(404);
    expect((await req('POST', '/api/secrets/PURGE_ME/restore')).statusCode).toBe(404);
    expect((await req('DELETE', '/api/secrets/PURGE_ME?purge=true')).statusCode).toBe(404);

    // Plain SQL over every table of the schema: no row mentions the id or the key, except
    // the append-only audit log, whose hash chain must not lose rows: it keeps who did what
    // to the name (never an id, value or ciphertext), including the purge itself.
    const tables = (
      await t.db.query<{ tablename: string }>(
        `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`,
      )
    )
      // audit_log's partitions (audit_log_d20261123, audit_log_default) are the audit log too.
      .filter((x) => x.tablename !== 'audit_log' && !x.tablename.startsWith('audit_log_'));
    // The change events are such a record too (of the name, never the id), kept
    // EVENTS_RETENTION_DAYS: created, deleted and purged name PURGE_ME, no ETag keeps the id.
    const events = await t.db.query<{ type: string; row: string }>(
      `SELECT type, e::text AS row FROM change_events e WHERE key = 'PURGE_ME' ORDER BY seq`,
    );
    expect(events.map((e) => e.type)).toContain('secret.purged');
    for (const e of events) expect(e.row).not.toContain(id);
    const auditMentions = await t.db.query<{ action: string; row: string }>(
      `SELECT action, a::text AS row FROM audit_log a WHERE key = 'PURGE_ME' ORDER BY id`,
    );
    expect(auditMentions.map((a) => a.action)).toContain('secret.purge');
    for (const a of auditMentions) expect(a.row).not.toContain(id);
    expect(tables.map((x) => x.tablename)).toEqual(expect.arrayContaining(['secrets', 'secret_versions']));
    for (const { tablename } of tables) {
      const n = await count(
        `SELECT count(*)::int AS n FROM ${tablename} x WHERE x::text LIKE $1 OR (x::text LIKE $2 AND $3)`,
        [`%${id}%`, '%PURGE_ME%', tablename !== 'change_events'],
      );
      expect(n, tablename).toBe(0);
    }
    const n = await count('SELECT count(*)::int AS n FROM secret_versions WHERE secret_id = $1', [id]);
    expect(n).toBe(0);
    // Other secrets are untouched, and the name is free again, as a brand-new secret.
    expect((await read('KEEP_ME')).statusCode).toBe(200);
    const again = await create('PURGE_ME', secretValue());
    expect(again.statusCode).toBe(201);
    expect(again.json().id).not.toBe(id);
    expect((await history('PURGE_ME')).versions.map((v) => v.version)).toEqual([1]);
  });
});

it('MAX_VERSIONS defaults to 20 and must be a whole number from 1 to 1000', () => {
  expect(loadConfig({}).maxVersions).toBe(20);
  expect(loadConfig({ MAX_VERSIONS: '3' }).maxVersions).toBe(3);
  for (const bad of ['0', '-1', '1.5', 'abc', '1001']) {
    expect(() => loadConfig({ MAX_VERSIONS: bad }), bad).toThrow(ConfigError);
  }
});
