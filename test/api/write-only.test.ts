import { beforeEach, describe, expect, it } from 'vitest';
import { bearer, type CreatedKey, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Issue 24: write-only secrets. Every value-returning route against a write-only secret, for
 * each credential kind (admin JWT, access key without and with secrets:inject): refused or
 * delivered exactly as specified, each with its audit row; the flag cannot be cleared by
 * anyone; writes, versions, rollback and restore work as for any secret. Both backends.
 */
const t = useTestApp({ resetEachTest: true, env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
const a = api(t);

interface Fixture {
  wo: string;
  plain: string;
  /** secrets:read, list and write: everything but inject. */
  reader: CreatedKey;
  /** The same plus secrets:inject. */
  injector: CreatedKey;
}
let f: Fixture;

beforeEach(async () => {
  const wo = secretValue('wo');
  const plain = secretValue('plain');
  expect((await a.create({ key: 'APP_WO', value: wo, isWriteOnly: true })).statusCode).toBe(201);
  expect((await a.create({ key: 'APP_PLAIN', value: plain })).statusCode).toBe(201);
  f = {
    wo,
    plain,
    reader: await createAccessKey(t, { scopes: ['secrets:read', 'secrets:list', 'secrets:write'] }),
    injector: await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:list', 'secrets:write', 'secrets:inject'],
    }),
  };
});

type Who = 'admin' | 'reader' | 'injector';
const CALLERS: Who[] = ['admin', 'reader', 'injector'];
const headersOf = (who: Who): Record<string, string> =>
  who === 'admin' ? t.auth('alice') : bearer(f[who].token);
const actorOf = (who: Who) => (who === 'admin' ? 'admin:alice' : `access_key:${f[who].id}`);

/** The audit rows a request left, by its request id: action, key, outcome and actor. */
async function rowsOf(res: { headers: Record<string, unknown> }) {
  const id = String(res.headers['x-request-id']);
  return t.db.query<{ action: string; key: string | null; outcome: string; actor: string }>(
    'SELECT action, key, outcome, actor FROM audit_log WHERE request_id = $1 ORDER BY id',
    [id],
  );
}

describe('reveal (GET /api/secrets/:key, ?version=) is refused to everyone', () => {
  for (const who of CALLERS) {
    it(`${who}: 403 FORBIDDEN with nextActions, no value, one denied row`, async () => {
      for (const url of ['/api/secrets/APP_WO', '/api/secrets/APP_WO?version=1']) {
        const res = await a.send({ method: 'GET', url, headers: headersOf(who) });
        expect(res.statusCode).toBe(403);
        const body = res.json();
        expect(body).toMatchObject({ error: 'FORBIDDEN', statusCode: 403 });
        expect(body.message).toBe('Secret APP_WO is write-only: its value is never returned, to anyone');
        expect(body.nextActions).toContain('secrets:inject');
        expect(res.body).not.toContain(f.wo);
        expect(res.headers.etag).toBeUndefined();
        expect(await rowsOf(res)).toEqual([
          { action: 'secret.read', key: 'APP_WO', outcome: 'denied', actor: actorOf(who) },
        ]);
      }
    });
  }

  it('a conditional read (If-None-Match) is refused too, and a readable secret is unchanged', async () => {
    const plain = await a.reveal('APP_PLAIN');
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).toEqual({ key: 'APP_PLAIN', value: f.plain });
    const res = await a.send({
      method: 'GET',
      url: '/api/secrets/APP_WO',
      headers: { 'if-none-match': '"anything"' },
    });
    expect(res.statusCode).toBe(403);
  });

  it('an inactive write-only secret still answers 403 (the answer is never, whatever its state)', async () => {
    expect((await a.remove('APP_WO')).statusCode).toBe(200);
    const res = await a.reveal('APP_WO');
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toBe('FORBIDDEN');
  });
});

describe('export delivers write-only values only to secrets:inject', () => {
  for (const format of ['json', 'dotenv']) {
    for (const who of ['admin', 'reader'] as const) {
      it(`${format}, ${who}: 403 naming the key, nothing returned, denied row per write-only key`, async () => {
        const res = await a.send({
          method: 'GET',
          url: `/api/secrets/export?format=${format}&prefix=APP_`,
          headers: headersOf(who),
        });
        expect(res.statusCode).toBe(403);
        expect(res.json()).toMatchObject({ error: 'AUTH_UNAUTHORIZED', statusCode: 403 });
        expect(res.json().message).toContain('APP_WO');
        expect(res.json().nextActions).toContain('secrets:inject');
        expect(res.body).not.toContain(f.wo);
        expect(res.body).not.toContain(f.plain);
        expect(await rowsOf(res)).toEqual([
          { action: 'secret.export', key: 'APP_WO', outcome: 'denied', actor: actorOf(who) },
        ]);
      });
    }
    it(`${format}, injector: delivered with every other value, one success row each`, async () => {
      const res = await a.send({
        method: 'GET',
        url: `/api/secrets/export?format=${format}&prefix=APP_`,
        headers: headersOf('injector'),
      });
      expect(res.statusCode).toBe(200);
      if (format === 'json') expect(res.json()).toEqual({ APP_PLAIN: f.plain, APP_WO: f.wo });
      else expect(res.body).toBe(`APP_PLAIN='${f.plain}'\nAPP_WO='${f.wo}'\n`);
      expect(await rowsOf(res)).toEqual([
        { action: 'secret.export', key: 'APP_PLAIN', outcome: 'success', actor: actorOf('injector') },
        { action: 'secret.export', key: 'APP_WO', outcome: 'success', actor: actorOf('injector') },
      ]);
    });
  }

  it('an export that holds no write-only secret is unchanged for an admin', async () => {
    const res = await a.send({ method: 'GET', url: '/api/secrets/export?prefix=APP_P' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ APP_PLAIN: f.plain });
  });

  it('an access key holding only secrets:inject cannot export (it needs secrets:read too)', async () => {
    const only = await createAccessKey(t, { scopes: ['secrets:inject'] });
    const res = await a.send({ method: 'GET', url: '/api/secrets/export', headers: bearer(only.token) });
    expect(res.statusCode).toBe(403);
    expect(res.json().message).toContain('lacks the scope secrets:read');
  });
});

describe('render delivers write-only values only to secrets:inject', () => {
  const template = 'a={{Secrets.APP_PLAIN}} b={{Secrets.APP_WO}}';
  for (const who of ['admin', 'reader'] as const) {
    it(`${who}: 403 naming the key, denied row`, async () => {
      const res = await a.send({
        method: 'POST',
        url: '/api/secrets/render',
        headers: headersOf(who),
        payload: { template },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json().message).toContain('APP_WO');
      expect(res.body).not.toContain(f.wo);
      expect(res.body).not.toContain(f.plain);
      expect(await rowsOf(res)).toEqual([
        { action: 'secret.render', key: 'APP_WO', outcome: 'denied', actor: actorOf(who) },
      ]);
    });
  }
  it('injector: rendered, one success row per reference', async () => {
    const res = await a.send({
      method: 'POST',
      url: '/api/secrets/render',
      headers: headersOf('injector'),
      payload: { template },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ rendered: `a=${f.plain} b=${f.wo}` });
    const rows = await rowsOf(res);
    expect(rows.map((r) => [r.key, r.outcome]).sort()).toEqual([
      ['APP_PLAIN', 'success'],
      ['APP_WO', 'success'],
    ]);
  });
});

describe('batch comparisons (import --dry-run, ensure) compare a write-only value only for secrets:inject', () => {
  const batch = (who: Who, entries: object[], dryRun = true) =>
    a.send({
      method: 'POST',
      url: '/api/secrets/batch',
      headers: headersOf(who),
      payload: { secrets: entries, dryRun },
    });

  for (const who of ['admin', 'reader'] as const) {
    it(`${who}: the right value is reported "updated" (no oracle), the plain one "unchanged"`, async () => {
      const res = await batch(who, [
        { key: 'APP_WO', value: f.wo },
        { key: 'APP_PLAIN', value: f.plain },
      ]);
      expect(res.statusCode).toBe(200);
      expect(res.json().results).toEqual([
        { key: 'APP_WO', status: 'updated' },
        { key: 'APP_PLAIN', status: 'unchanged' },
      ]);
      // A dry run's rows say dry_run whatever the status (the batch's own rule).
      const rows = await rowsOf(res);
      expect(rows.map((r) => [r.key, r.outcome, r.actor])).toEqual([
        ['APP_PLAIN', 'dry_run', actorOf(who)],
        ['APP_WO', 'dry_run', actorOf(who)],
      ]);
    });
  }

  it('injector: compared like any value', async () => {
    const res = await batch('injector', [
      { key: 'APP_WO', value: f.wo },
      { key: 'APP_PLAIN', value: f.plain },
    ]);
    expect(res.json().results).toEqual([
      { key: 'APP_WO', status: 'unchanged' },
      { key: 'APP_PLAIN', status: 'unchanged' },
    ]);
    expect((await rowsOf(res)).map((r) => [r.key, r.outcome])).toEqual([
      ['APP_PLAIN', 'dry_run'],
      ['APP_WO', 'dry_run'],
    ]);
  });

  it('creates write-only secrets, generated ones included; the list shows the flag', async () => {
    const res = await batch(
      'reader',
      [
        { key: 'NEW_WO', value: secretValue(), isWriteOnly: true },
        { key: 'NEW_GEN', generate: { length: 40, alphabet: 'hex' }, isWriteOnly: true },
      ],
      false,
    );
    expect(res.statusCode).toBe(200);
    const list = (await a.list({ prefix: 'NEW_' })).json().secrets;
    expect(list.map((s: { key: string; isWriteOnly: boolean }) => [s.key, s.isWriteOnly]).sort()).toEqual([
      ['NEW_GEN', true],
      ['NEW_WO', true],
    ]);
    const out = await a.send({
      method: 'GET',
      url: '/api/secrets/export?prefix=NEW_GEN',
      headers: headersOf('injector'),
    });
    expect(out.json().NEW_GEN).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe('the flag: set on create, by an admin on an existing secret, never cleared', () => {
  it('list and metadata show isWriteOnly; readable secrets show false', async () => {
    const list = (await a.list({ prefix: 'APP_' })).json().secrets;
    expect(list.map((s: { key: string; isWriteOnly: boolean }) => [s.key, s.isWriteOnly]).sort()).toEqual([
      ['APP_PLAIN', false],
      ['APP_WO', true],
    ]);
  });

  it('an access key with secrets:write may create a write-only secret (generated: no one ever saw it)', async () => {
    const res = await a.send({
      method: 'POST',
      url: '/api/secrets',
      headers: headersOf('reader'),
      payload: { key: 'CI_GEN', generate: { length: 32 }, isWriteOnly: true },
    });
    expect(res.statusCode).toBe(201);
    expect((await a.reveal('CI_GEN')).statusCode).toBe(403);
  });

  for (const who of CALLERS) {
    it(`${who}: PUT isWriteOnly:false is refused (403 FORBIDDEN), nothing changes, the row says forbidden`, async () => {
      const before = (await t.db.query('SELECT * FROM secrets WHERE key = $1', ['APP_WO']))[0];
      const res = await a.send({
        method: 'PUT',
        url: '/api/secrets/APP_WO',
        headers: headersOf(who),
        payload: { isWriteOnly: false, description: 'try' },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ error: 'FORBIDDEN' });
      expect(res.json().message).toBe('Secret APP_WO is write-only, and write-only cannot be undone');
      expect((await t.db.query('SELECT * FROM secrets WHERE key = $1', ['APP_WO']))[0]).toEqual(before);
      expect(await rowsOf(res)).toEqual([
        { action: 'secret.update', key: 'APP_WO', outcome: 'forbidden', actor: actorOf(who) },
      ]);
    });

    it(`${who}: batch isWriteOnly:false is refused, the whole batch aborted`, async () => {
      const res = await a.send({
        method: 'POST',
        url: '/api/secrets/batch',
        headers: headersOf(who),
        payload: {
          secrets: [
            { key: 'APP_WO', value: secretValue(), isWriteOnly: false },
            { key: 'APP_PLAIN', value: secretValue() },
          ],
        },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toBe('FORBIDDEN');
      const [row] = await t.db.query<{ write_only: boolean; current_version: number }>(
        `SELECT write_only, current_version FROM secrets WHERE key = 'APP_WO'`,
      );
      expect(row).toEqual({ write_only: true, current_version: 1 });
      expect((await rowsOf(res)).map((r) => [r.key, r.outcome]).sort()).toEqual([
        ['APP_PLAIN', 'aborted'],
        ['APP_WO', 'forbidden'],
      ]);
    });
  }

  it('reviving a soft-deleted write-only secret keeps it write-only; asking for false is refused', async () => {
    expect((await a.remove('APP_WO')).statusCode).toBe(200);
    const refused = await a.create({ key: 'APP_WO', value: secretValue(), isWriteOnly: false });
    expect(refused.statusCode).toBe(403);
    const refusedBatch = await a.send({
      method: 'POST',
      url: '/api/secrets/batch',
      payload: { secrets: [{ key: 'APP_WO', value: secretValue(), isWriteOnly: false }] },
    });
    expect(refusedBatch.statusCode).toBe(403);
    const revived = await a.create({ key: 'APP_WO', value: secretValue() });
    expect(revived.statusCode).toBe(201);
    expect((await a.reveal('APP_WO')).statusCode).toBe(403);
    // The old version too: it was stored while write-only.
    const old = await a.send({ method: 'GET', url: '/api/secrets/APP_WO?version=1' });
    expect(old.statusCode).toBe(403);
  });

  it('the database refuses to clear it even without the service (trigger)', async () => {
    await expect(t.db.query(`UPDATE secrets SET write_only = false WHERE key = 'APP_WO'`)).rejects.toThrow(
      /write-only: the flag cannot be cleared/,
    );
    // Setting other columns, or true again, is fine.
    await t.db.query(`UPDATE secrets SET write_only = true, description = 'x' WHERE key = 'APP_WO'`);
  });

  it('an access key cannot switch an existing secret to write-only (denied row); an admin can, audited', async () => {
    const byKey = await a.send({
      method: 'PUT',
      url: '/api/secrets/APP_PLAIN',
      headers: headersOf('reader'),
      payload: { isWriteOnly: true },
    });
    expect(byKey.statusCode).toBe(403);
    expect(byKey.json().error).toBe('AUTH_UNAUTHORIZED');
    expect(await rowsOf(byKey)).toEqual([
      { action: 'secret.update', key: 'APP_PLAIN', outcome: 'denied', actor: actorOf('reader') },
    ]);
    const byKeyBatch = await a.send({
      method: 'POST',
      url: '/api/secrets/batch',
      headers: headersOf('reader'),
      payload: { secrets: [{ key: 'APP_PLAIN', value: f.plain, isWriteOnly: true }] },
    });
    expect(byKeyBatch.statusCode).toBe(403);
    expect((await a.reveal('APP_PLAIN')).statusCode).toBe(200);
    // Re-sending the flag for a secret that already has it changes nothing and is allowed
    // (an access key's `secrets set --write-only` stays repeatable).
    const again = await a.send({
      method: 'PUT',
      url: '/api/secrets/APP_WO',
      headers: headersOf('reader'),
      payload: { value: secretValue(), isWriteOnly: true },
    });
    expect(again.statusCode).toBe(200);

    const byAdmin = await a.send({
      method: 'PUT',
      url: '/api/secrets/APP_PLAIN',
      headers: headersOf('admin'),
      payload: { isWriteOnly: true },
    });
    expect(byAdmin.statusCode).toBe(200);
    expect(await rowsOf(byAdmin)).toEqual([
      { action: 'secret.update', key: 'APP_PLAIN', outcome: 'success', actor: 'admin:alice' },
    ]);
    expect((await a.reveal('APP_PLAIN')).statusCode).toBe(403);
    // Setting it again is a no-op for an admin, and the version kept from before is locked too.
    expect((await a.update('APP_PLAIN', { isWriteOnly: true })).statusCode).toBe(200);
    const old = await a.send({ method: 'GET', url: '/api/secrets/APP_PLAIN?version=1' });
    expect(old.statusCode).toBe(403);
  });

  it('an admin can switch via batch import', async () => {
    const res = await a.send({
      method: 'POST',
      url: '/api/secrets/batch',
      payload: { secrets: [{ key: 'APP_PLAIN', value: f.plain, isWriteOnly: true }] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().results).toEqual([{ key: 'APP_PLAIN', status: 'updated' }]);
    expect((await a.reveal('APP_PLAIN')).statusCode).toBe(403);
  });
});

describe('writes, versions, rollback, restore and compare-and-set work as for any secret', () => {
  it('a new value, its versions, a rollback, delete and restore; delivered to the injector each time', async () => {
    const exported = async () =>
      (
        await a.send({
          method: 'GET',
          url: '/api/secrets/export?prefix=APP_WO',
          headers: headersOf('injector'),
        })
      ).json().APP_WO;
    const v2 = secretValue('v2');
    const etag = (await a.send({ method: 'GET', url: '/api/secrets/APP_WO/versions' })).headers.etag;
    const upd = await a.send({
      method: 'PUT',
      url: '/api/secrets/APP_WO',
      headers: { 'if-match': String(etag) },
      payload: { value: v2 },
    });
    expect(upd.statusCode).toBe(200);
    expect(await exported()).toBe(v2);
    const versions = await a.send({ method: 'GET', url: '/api/secrets/APP_WO/versions' });
    expect(versions.statusCode).toBe(200);
    expect(versions.json().versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(versions.body).not.toContain(v2);
    const rb = await a.req('POST', '/api/secrets/APP_WO/rollback', { version: 1 });
    expect(rb.statusCode).toBe(200);
    expect(await exported()).toBe(f.wo);
    expect((await a.remove('APP_WO')).statusCode).toBe(200);
    expect((await a.req('POST', '/api/secrets/APP_WO/restore')).statusCode).toBe(200);
    expect(await exported()).toBe(f.wo);
    const [row] = await t.db.query<{ write_only: boolean }>(
      `SELECT write_only FROM secrets WHERE key = 'APP_WO'`,
    );
    expect(row?.write_only).toBe(true);
  });
});

it('access keys accept the secrets:inject scope; an unknown scope still names the list', async () => {
  const bad = await a.req('POST', '/api/access-keys', { name: 'x', scopes: ['secrets:reveal'] });
  expect(bad.statusCode).toBe(400);
  expect(bad.json().message).toContain('secrets:inject');
  const who = await a.send({ method: 'GET', url: '/api/auth/whoami', headers: headersOf('injector') });
  expect(who.json().scopes).toContain('secrets:inject');
});
