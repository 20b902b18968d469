import { describe, expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';

const t = useTestApp({ resetEachTest: true });
const a = api(t);
/** A request with exactly these credentials (no admin token beside them). */
const as = (h: Record<string, string>) => (method: 'GET' | 'POST', url: string) =>
  t.app.inject({ method, url, headers: h });

const auditRows = (action: string) =>
  t.db.query<{ actor: string; key: string | null; outcome: string; environment: string | null }>(
    'SELECT actor, key, outcome, environment FROM audit_log WHERE action = $1 ORDER BY id',
    [action],
  );

describe('environments', () => {
  it('default always exists; others are created, described, listed and read', async () => {
    const first = await a.req('GET', '/api/environments');
    expect(first.statusCode).toBe(200);
    expect(first.json().environments.map((e: { name: string }) => e.name)).toEqual(['default']);

    const created = await a.req('POST', '/api/environments', { name: 'staging', description: 'pre-prod' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ name: 'staging', description: 'pre-prod' });
    expect((await a.req('POST', '/api/environments', { name: 'production' })).statusCode).toBe(201);

    const again = await a.req('POST', '/api/environments', { name: 'staging' });
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toBe('Environment already exists: staging');

    const list = await a.req('GET', '/api/environments');
    expect(list.json().environments.map((e: { name: string }) => e.name)).toEqual([
      'default',
      'staging',
      'production',
    ]);
    const paged = await a.send({ method: 'GET', url: '/api/environments', query: { limit: '2' } });
    expect(paged.json().environments).toHaveLength(2);
    const rest = await a.send({
      method: 'GET',
      url: '/api/environments',
      query: { limit: '2', cursor: paged.json().nextCursor },
    });
    expect(rest.json().environments.map((e: { name: string }) => e.name)).toEqual(['production']);

    const one = await a.req('GET', '/api/environments/staging');
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'staging', secrets: { active: 0, inactive: 0 } });

    const patched = await a.req('PATCH', '/api/environments/staging', { description: 'the dress rehearsal' });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().description).toBe('the dress rehearsal');
    expect(
      (await a.req('PATCH', '/api/environments/staging', { description: null })).json().description,
    ).toBe(null);

    const created_ = await auditRows('environment.create');
    expect(created_.map((r) => [r.environment, r.outcome])).toEqual([
      ['staging', 'success'],
      ['production', 'success'],
      ['staging', 'conflict'],
    ]);
  });

  it('refuses bad names and bodies with 400 and changes nothing', async () => {
    for (const name of ['Staging', 'with space', '-lead', 'a'.repeat(33), '', 'ünï']) {
      const r = await a.req('POST', '/api/environments', { name });
      expect(r.statusCode, name).toBe(400);
      expect(r.json().error).toBe('INVALID_INPUT');
    }
    expect((await a.req('POST', '/api/environments', { name: 'qa', extra: 1 })).json().message).toContain(
      'Unknown field(s): extra',
    );
    expect((await a.req('PATCH', '/api/environments/default', {})).statusCode).toBe(400);
    expect((await a.req('GET', '/api/environments')).json().environments).toHaveLength(1);
  });

  it('answers 404 for an unknown environment, and the default one cannot be deleted', async () => {
    for (const [m, url] of [
      ['GET', '/api/environments/nowhere'],
      ['PATCH', '/api/environments/nowhere'],
      ['DELETE', '/api/environments/nowhere'],
    ] as const) {
      const r = await a.req(m, url, m === 'PATCH' ? { description: 'x' } : undefined);
      expect(r.statusCode, `${m} ${url}`).toBe(404);
      expect(r.json()).toMatchObject({ error: 'NOT_FOUND', message: 'Environment not found: nowhere' });
    }
    const del = await a.req('DELETE', '/api/environments/default');
    expect(del.statusCode).toBe(403);
    expect(del.json().message).toContain('default environment cannot be deleted');
    expect((await a.req('GET', '/api/environments/default')).statusCode).toBe(200);
  });

  it('deletes an empty environment, audited', async () => {
    await a.req('POST', '/api/environments', { name: 'scratch' });
    const del = await a.req('DELETE', '/api/environments/scratch');
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ success: true, message: 'Environment scratch has been deleted', erased: 0 });
    expect((await a.req('GET', '/api/environments/scratch')).statusCode).toBe(404);
    expect(await auditRows('environment.delete')).toEqual([
      { actor: 'admin:test-admin', key: null, outcome: 'success', environment: 'scratch' },
    ]);
  });

  it('admin-only changes: access keys may not create, change or delete environments', async () => {
    await a.req('POST', '/api/environments', { name: 'staging' });
    const k = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'],
      environments: ['*'],
    });
    for (const [m, url, body] of [
      ['POST', '/api/environments', { name: 'qa' }],
      ['PATCH', '/api/environments/staging', { description: 'x' }],
      ['DELETE', '/api/environments/staging', undefined],
    ] as const) {
      const r = await a.req(m, url, body, bearer(k.token));
      expect(r.statusCode, `${m} ${url}`).toBe(403);
    }
    expect((await a.req('GET', '/api/environments/staging')).statusCode).toBe(200);
  });
});

describe('access-key environment grants', () => {
  it('stores the environments a key covers: default when omitted, names, or *', async () => {
    await a.req('POST', '/api/environments', { name: 'staging' });
    const plain = await a.req('POST', '/api/access-keys', { name: 'plain', scopes: ['secrets:read'] });
    expect(plain.json().environments).toEqual(['default']);
    const named = await a.req('POST', '/api/access-keys', {
      name: 'named',
      scopes: ['secrets:read'],
      environments: ['staging', 'staging', 'default'],
    });
    expect(named.json().environments).toEqual(['staging', 'default']);
    const all = await a.req('POST', '/api/access-keys', {
      name: 'all',
      scopes: ['secrets:read'],
      environments: ['staging', '*'],
    });
    expect(all.json().environments).toEqual(['*']);
    const listed = await a.req('GET', '/api/access-keys');
    expect(
      Object.fromEntries(
        listed
          .json()
          .accessKeys.map((k: { name: string; environments: string[] }) => [k.name, k.environments]),
      ),
    ).toEqual({ plain: ['default'], named: ['staging', 'default'], all: ['*'] });
  });

  it('refuses unknown or malformed environments in a grant (400, nothing stored)', async () => {
    const unknown = await a.req('POST', '/api/access-keys', {
      name: 'typo',
      scopes: ['secrets:read'],
      environments: ['prodution'],
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toBe('Unknown environment(s): prodution');
    for (const environments of [[], ['Prod'], 'staging', [1]]) {
      const r = await a.req('POST', '/api/access-keys', {
        name: 'bad',
        scopes: ['secrets:read'],
        environments,
      });
      expect(r.statusCode, JSON.stringify(environments)).toBe(400);
    }
    expect((await a.req('GET', '/api/access-keys')).json().accessKeys).toEqual([]);
  });

  it('a key sees only the environments it covers, and learns nothing of the others', async () => {
    await a.req('POST', '/api/environments', { name: 'staging' });
    await a.req('POST', '/api/environments', { name: 'production' });
    const staging = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:list'],
      environments: ['staging'],
    });
    for (const h of [bearer(staging.token), apiKey(staging.token)]) {
      const req = as(h);
      const list = await req('GET', '/api/environments');
      expect(list.statusCode).toBe(200);
      expect(list.json().environments.map((e: { name: string }) => e.name)).toEqual(['staging']);
      const own = await req('GET', '/api/environments/staging');
      expect(own.statusCode).toBe(200);
      // No counts for an access key: it may not see every secret there.
      expect(own.json().secrets).toBeUndefined();
      // An existing and a missing environment answer alike: existence is not revealed.
      const prod = await req('GET', '/api/environments/production');
      const none = await req('GET', '/api/environments/nowhere');
      expect(prod.statusCode).toBe(403);
      expect(none.statusCode).toBe(403);
      expect(prod.json().message).toBe(
        `Access key "${staging.name}" does not cover the environment production`,
      );
      expect(none.json().message).toBe(`Access key "${staging.name}" does not cover the environment nowhere`);
      // The InsForge API is the default environment: not covered either.
      const def = await req('GET', '/api/secrets');
      expect(def.statusCode).toBe(403);
      expect(def.json().message).toContain('does not cover the default environment');
    }
    const denied = await t.db.query<{ action: string; outcome: string; environment: string | null }>(
      `SELECT action, outcome, environment FROM audit_log WHERE outcome = 'denied' ORDER BY id`,
    );
    expect(denied.slice(0, 3)).toEqual([
      { action: 'environment.list', outcome: 'denied', environment: 'production' },
      { action: 'environment.list', outcome: 'denied', environment: 'nowhere' },
      // default's rows are stored as before environments: without a name.
      { action: 'secret.list', outcome: 'denied', environment: null },
    ]);
    // A key from before environments (default only) keeps exactly what it had.
    const old = await createAccessKey(t, { scopes: ['secrets:list'] });
    expect((await a.req('GET', '/api/secrets', undefined, bearer(old.token))).statusCode).toBe(200);
    expect((await a.req('GET', '/api/environments/staging', undefined, bearer(old.token))).statusCode).toBe(
      403,
    );
  });
});

describe('audit by environment', () => {
  it('GET /api/audit filters by environment; old secret rows without one belong to default', async () => {
    await a.create({ key: 'AUD_ENV', value: 'x-value-1' });
    await a.req('POST', '/api/environments', { name: 'staging' });
    // A row as written before environments existed.
    await t.db.query(
      `INSERT INTO audit_log (actor, action, key, outcome) VALUES ('admin:old', 'secret.read', 'AUD_ENV', 'success')`,
    );
    const byDefault = await a.send({ method: 'GET', url: '/api/audit', query: { environment: 'default' } });
    expect(byDefault.statusCode).toBe(200);
    const rows = byDefault.json().entries as { actor: string; action: string; environment: string }[];
    expect(rows.map((r) => [r.actor, r.action, r.environment])).toEqual([
      ['admin:old', 'secret.read', 'default'],
      ['admin:test-admin', 'secret.create', 'default'],
    ]);
    const byStaging = await a.send({ method: 'GET', url: '/api/audit', query: { environment: 'staging' } });
    expect(byStaging.json().entries.map((r: { action: string }) => r.action)).toEqual(['environment.create']);
    expect(
      (await a.send({ method: 'GET', url: '/api/audit', query: { environment: 'Not A Slug' } })).statusCode,
    ).toBe(400);
  });
});
