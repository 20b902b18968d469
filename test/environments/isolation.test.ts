import { describe, expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * The same secret API in every environment, isolated: /api/secrets is `default`, every other
 * environment is under /api/environments/:env/secrets, served by the same handlers. An
 * access key limited to some environments never sees, lists, exports, renders or learns the
 * existence of anything in the others.
 */
const t = useTestApp({ resetEachTest: true });

const base = (env: string) => (env === 'default' ? '/api/secrets' : `/api/environments/${env}/secrets`);
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const send = (
  method: Method,
  url: string,
  opts: { payload?: object; headers?: Record<string, string> } = {},
) =>
  t.app.inject({
    method,
    url,
    headers: opts.headers ?? t.auth(),
    ...(opts.payload ? { payload: opts.payload } : {}),
  });

async function setup() {
  for (const name of ['staging', 'production'])
    expect((await send('POST', '/api/environments', { payload: { name } })).statusCode).toBe(201);
  const values: Record<string, string> = {};
  for (const env of ['default', 'staging', 'production']) {
    values[env] = secretValue(env);
    const r = await send('POST', base(env), { payload: { key: 'STRIPE_API_KEY', value: values[env] } });
    expect(r.statusCode, env).toBe(201);
  }
  return values;
}

/** Every route of the secret surface, for one environment and key. */
const routes = (env: string, key = 'STRIPE_API_KEY') => {
  const b = base(env);
  return [
    { name: 'list', method: 'GET', url: b },
    { name: 'create', method: 'POST', url: b, payload: { key: 'NEW_ONE', value: 'new-value-1' } },
    { name: 'read', method: 'GET', url: `${b}/${key}` },
    { name: 'read version', method: 'GET', url: `${b}/${key}?version=1` },
    { name: 'update', method: 'PUT', url: `${b}/${key}`, payload: { value: 'changed-value' } },
    { name: 'versions', method: 'GET', url: `${b}/${key}/versions` },
    { name: 'rollback', method: 'POST', url: `${b}/${key}/rollback`, payload: { version: 1 } },
    { name: 'restore', method: 'POST', url: `${b}/${key}/restore` },
    { name: 'export', method: 'GET', url: `${b}/export?format=json` },
    { name: 'render', method: 'POST', url: `${b}/render`, payload: { template: `{{Secrets.${key}}}` } },
    {
      name: 'batch',
      method: 'POST',
      url: `${b}/batch`,
      payload: { secrets: [{ key, value: 'batch-value' }] },
    },
    { name: 'delete', method: 'DELETE', url: `${b}/${key}` },
    { name: 'purge', method: 'DELETE', url: `${b}/${key}?purge=true` },
  ] as { name: string; method: Method; url: string; payload?: object }[];
};

describe('one API per environment', () => {
  it('keeps a key apart in each environment: values, lists, versions and exports', async () => {
    const values = await setup();
    for (const env of ['default', 'staging', 'production']) {
      const read = await send('GET', `${base(env)}/STRIPE_API_KEY`);
      expect(read.statusCode, env).toBe(200);
      expect(read.json()).toEqual({ key: 'STRIPE_API_KEY', value: values[env] });
      const list = await send('GET', base(env));
      expect(list.json().secrets.map((s: { key: string }) => s.key)).toEqual(['STRIPE_API_KEY']);
      const exported = await send('GET', `${base(env)}/export?format=json`);
      expect(exported.json()).toEqual({ STRIPE_API_KEY: values[env] });
    }
    // Each has its own id, versions, expiry and flags.
    const ids = await t.db.query<{ environment: string; id: string }>(
      `SELECT environment, id FROM secrets WHERE key = 'STRIPE_API_KEY'`,
    );
    expect(new Set(ids.map((r) => r.id)).size).toBe(3);
    const v2 = secretValue('staging2');
    expect(
      (await send('PUT', `${base('staging')}/STRIPE_API_KEY`, { payload: { value: v2, isReserved: true } }))
        .statusCode,
    ).toBe(200);
    expect((await send('GET', `${base('staging')}/STRIPE_API_KEY/versions`)).json().versions).toHaveLength(2);
    expect((await send('GET', `${base('production')}/STRIPE_API_KEY/versions`)).json().versions).toHaveLength(
      1,
    );
    expect((await send('GET', '/api/secrets/STRIPE_API_KEY')).json().value).toBe(values.default);
    // Reserved in staging only: production deletes fine.
    expect((await send('DELETE', `${base('staging')}/STRIPE_API_KEY`)).statusCode).toBe(403);
    expect((await send('DELETE', `${base('production')}/STRIPE_API_KEY`)).statusCode).toBe(200);
    expect((await send('GET', `${base('production')}/STRIPE_API_KEY`)).statusCode).toBe(404);
    expect((await send('GET', `${base('staging')}/STRIPE_API_KEY`)).json().value).toBe(v2);
  });

  it('serves every route in a named environment, each change and read in that environment only', async () => {
    await setup();
    for (const r of routes('staging')) {
      const res = await send(r.method, r.url, r.payload ? { payload: r.payload } : {});
      // Purge needs an inactive secret: it follows the delete, so every route succeeds.
      expect(res.statusCode, `${r.name}: ${res.body}`).toBeLessThan(300);
    }
    // The default and production copies are untouched.
    for (const env of ['default', 'production']) {
      const rows = await t.db.query<{ current_version: number; is_active: boolean }>(
        `SELECT current_version, is_active FROM secrets WHERE environment = $1 AND key = 'STRIPE_API_KEY'`,
        [env],
      );
      expect(rows, env).toEqual([{ current_version: 1, is_active: true }]);
    }
    const audited = await t.db.query<{ action: string; environment: string }>(
      `SELECT DISTINCT action, environment FROM audit_log WHERE key = 'STRIPE_API_KEY' AND environment = 'staging' ORDER BY action`,
    );
    expect(audited.map((r) => r.action)).toEqual(
      expect.arrayContaining([
        'secret.read',
        'secret.update',
        'secret.delete',
        'secret.purge',
        'secret.export',
        'secret.render',
      ]),
    );
  });

  it('answers 404 for an unknown environment on every route, and creates nothing', async () => {
    for (const r of routes('nowhere')) {
      const res = await send(r.method, r.url, r.payload ? { payload: r.payload } : {});
      expect(res.statusCode, r.name).toBe(404);
      expect(res.json().message, r.name).toBe('Environment not found: nowhere');
    }
    expect(await t.db.query('SELECT 1 FROM secrets')).toEqual([]);
  });

  it('renders templates within their environment', async () => {
    const values = await setup();
    for (const env of ['default', 'staging', 'production']) {
      const r = await send('POST', `${base(env)}/render`, {
        payload: { template: 'k={{Secrets.STRIPE_API_KEY}}' },
      });
      expect(r.json().rendered, env).toBe(`k=${values[env]}`);
    }
  });

  it('refuses to delete an environment that holds active secrets (409 with the count), then deletes it once empty', async () => {
    await setup();
    await send('POST', base('staging'), { payload: { key: 'SECOND', value: secretValue() } });
    const refused = await send('DELETE', '/api/environments/staging');
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toBe(
      'Environment staging still holds 2 active secrets: it cannot be deleted',
    );
    expect(refused.json().nextActions).toContain('DELETE /api/environments/staging/secrets/{key}');
    await send('DELETE', `${base('staging')}/STRIPE_API_KEY`);
    await send('DELETE', `${base('staging')}/SECOND`);
    const deleted = await send('DELETE', '/api/environments/staging');
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json().erased).toBe(2);
    // Erased with it (one purge row each); the other environments keep theirs.
    expect(await t.db.query(`SELECT key FROM secrets WHERE environment = 'staging'`)).toEqual([]);
    const purged = await t.db.query<{ key: string }>(
      `SELECT key FROM audit_log WHERE action = 'secret.purge' AND environment = 'staging' ORDER BY key`,
    );
    expect(purged.map((r) => r.key)).toEqual(['SECOND', 'STRIPE_API_KEY']);
    expect((await send('GET', `${base('production')}/STRIPE_API_KEY`)).statusCode).toBe(200);
    // A new environment of the same name starts empty.
    await send('POST', '/api/environments', { payload: { name: 'staging' } });
    expect((await send('GET', base('staging'))).json().secrets).toEqual([]);
  });

  it('erases the soft-deleted secrets of a deleted environment as purges: one secret.purged event each, their ETags and expiry notices gone', async () => {
    await setup();
    await send('POST', base('staging'), { payload: { key: 'SECOND', value: secretValue() } });
    await send('PUT', `${base('staging')}/SECOND`, { payload: { value: secretValue() } });
    for (const key of ['STRIPE_API_KEY', 'SECOND']) await send('DELETE', `${base('staging')}/${key}`);
    // Reserved while soft-deleted: erased with the environment all the same.
    const reserved = await send('PUT', `${base('staging')}/SECOND`, { payload: { isReserved: true } });
    expect(reserved.statusCode).toBe(200);
    const ids = await t.db.query<{ id: string; key: string }>(
      `SELECT id::text AS id, key FROM secrets WHERE environment = 'staging' ORDER BY key`,
    );
    expect(ids.map((r) => r.key)).toEqual(['SECOND', 'STRIPE_API_KEY']);
    for (const { id } of ids)
      await t.db.query(`INSERT INTO expiry_notices (secret_id, expires_at) VALUES ($1::uuid, now())`, [id]);
    const before = await t.db.query<{ seq: string }>(
      `SELECT coalesce(max(seq), 0)::text AS seq FROM change_events`,
    );
    // The ETags of the two ids are in their earlier events (created, updated, deleted).
    const etagged = `SELECT count(*)::int AS n FROM change_events WHERE etag LIKE '%' || $1 || '%'`;
    for (const { id } of ids)
      expect((await t.db.query<{ n: number }>(etagged, [id]))[0]!.n).toBeGreaterThan(0);

    const deleted = await send('DELETE', '/api/environments/staging');
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json().erased).toBe(2);
    const events = await t.db.query<{
      type: string;
      key: string;
      version: number;
      environment: string;
      etag: string | null;
      action: string;
      av: number;
    }>(
      `SELECT e.type, e.key, e.version, e.environment, e.etag, a.action, a.version AS av
       FROM change_events e JOIN audit_log a ON a.id = e.audit_id WHERE e.seq > $1::bigint ORDER BY e.seq`,
      [before[0]!.seq],
    );
    expect(events).toEqual([
      {
        type: 'secret.purged',
        key: 'SECOND',
        version: 2,
        environment: 'staging',
        etag: null,
        action: 'secret.purge',
        av: 2,
      },
      {
        type: 'secret.purged',
        key: 'STRIPE_API_KEY',
        version: 1,
        environment: 'staging',
        etag: null,
        action: 'secret.purge',
        av: 1,
      },
    ]);
    for (const { id } of ids) {
      expect((await t.db.query<{ n: number }>(etagged, [id]))[0]!.n, id).toBe(0);
      expect(await t.db.query('SELECT 1 FROM expiry_notices WHERE secret_id = $1::uuid', [id])).toEqual([]);
    }
    // The audit rows as before: one secret.purge per erased secret (key, version), then the
    // environment's own row.
    const audit = await t.db.query<{
      action: string;
      key: string | null;
      version: number | null;
      outcome: string;
    }>(
      `SELECT action, key, version, outcome FROM audit_log
       WHERE environment = 'staging' AND action IN ('secret.purge', 'environment.delete') ORDER BY id`,
    );
    expect(audit).toEqual([
      { action: 'secret.purge', key: 'SECOND', version: 2, outcome: 'success' },
      { action: 'secret.purge', key: 'STRIPE_API_KEY', version: 1, outcome: 'success' },
      { action: 'environment.delete', key: null, version: null, outcome: 'success' },
    ]);
  });
});

describe('access keys limited to environments', () => {
  const allScopes = ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list', 'secrets:inject'];

  it('a staging key cannot reach production through any route, nor learn what exists there', async () => {
    const values = await setup();
    const k = await createAccessKey(t, { scopes: allScopes, environments: ['staging'] });
    for (const headers of [bearer(k.token), apiKey(k.token)]) {
      // Production: an existing key, a missing key and a missing environment answer alike.
      for (const [env, key] of [
        ['production', 'STRIPE_API_KEY'],
        ['production', 'NO_SUCH_KEY'],
        ['nowhere', 'STRIPE_API_KEY'],
        ['default', 'STRIPE_API_KEY'],
      ] as const) {
        for (const r of routes(env, key)) {
          const res = await send(r.method, r.url, { headers, ...(r.payload ? { payload: r.payload } : {}) });
          expect(res.statusCode, `${env} ${key} ${r.name}`).toBe(403);
          expect(res.body).not.toContain(values.production);
          expect(res.body).not.toContain(values.default);
          expect(res.json().message).toBe(
            env === 'default'
              ? `Access key "${k.name}" does not cover the default environment (/api/secrets)`
              : `Access key "${k.name}" does not cover the environment ${env}`,
          );
        }
      }
      // Staging works, and sees staging only.
      expect((await send('GET', `${base('staging')}/STRIPE_API_KEY`, { headers })).json().value).toBe(
        values.staging,
      );
      const exported = await send('GET', `${base('staging')}/export?format=json`, { headers });
      expect(exported.json()).toEqual({ STRIPE_API_KEY: values.staging });
    }
    // Nothing changed outside staging.
    const rows = await t.db.query<{ environment: string; current_version: number; is_active: boolean }>(
      `SELECT environment, current_version, is_active FROM secrets WHERE environment <> 'staging' ORDER BY environment`,
    );
    expect(rows).toEqual([
      { environment: 'default', current_version: 1, is_active: true },
      { environment: 'production', current_version: 1, is_active: true },
    ]);
    const denied = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE outcome = 'denied' AND environment = 'production'`,
    );
    expect(denied[0]?.n).toBeGreaterThan(0);
  });

  it('a key for several environments, or *, reaches each of them with its own values', async () => {
    const values = await setup();
    const both = await createAccessKey(t, {
      scopes: ['secrets:read'],
      environments: ['staging', 'production'],
    });
    const all = await createAccessKey(t, { scopes: ['secrets:read'], environments: ['*'] });
    for (const env of ['staging', 'production'])
      expect(
        (await send('GET', `${base(env)}/STRIPE_API_KEY`, { headers: bearer(both.token) })).json().value,
      ).toBe(values[env]);
    expect(
      (await send('GET', '/api/secrets/STRIPE_API_KEY', { headers: bearer(both.token) })).statusCode,
    ).toBe(403);
    for (const env of ['default', 'staging', 'production'])
      expect(
        (await send('GET', `${base(env)}/STRIPE_API_KEY`, { headers: apiKey(all.token) })).json().value,
      ).toBe(values[env]);
  });

  it('key patterns still apply inside a covered environment', async () => {
    await setup();
    await send('POST', base('staging'), { payload: { key: 'DB_URL', value: secretValue() } });
    const k = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:list'],
      keys: ['DB_*'],
      environments: ['staging'],
    });
    const list = await send('GET', base('staging'), { headers: bearer(k.token) });
    expect(list.json().secrets.map((s: { key: string }) => s.key)).toEqual(['DB_URL']);
    expect(
      (await send('GET', `${base('staging')}/STRIPE_API_KEY`, { headers: bearer(k.token) })).statusCode,
    ).toBe(403);
  });
});
