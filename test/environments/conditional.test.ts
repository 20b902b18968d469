import { describe, expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';
import { expectNothingChanged } from '../helpers/unchanged.js';

/**
 * What the environment routes share with /api/secrets beyond the plain calls: conditional
 * requests (If-Match, If-None-Match, a batch's ifMatch/ifNoneMatch) judged against the
 * secret of the environment addressed, templates that resolve nothing from another
 * environment, and refusals that answer alike whether the other environment holds the key.
 */
const t = useTestApp({ resetEachTest: true });

const STAGING = '/api/environments/staging/secrets';
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const send = (method: Method, url: string, payload?: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url, headers: { ...t.auth(), ...headers }, ...(payload ? { payload } : {}) });

/** STRIPE_API_KEY in default and in staging: two secrets, two ETags. */
async function setup() {
  expect((await send('POST', '/api/environments', { name: 'staging' })).statusCode).toBe(201);
  expect((await send('POST', '/api/environments', { name: 'production' })).statusCode).toBe(201);
  const values = { default: secretValue('default'), staging: secretValue('staging') };
  expect(
    (await send('POST', '/api/secrets', { key: 'STRIPE_API_KEY', value: values.default })).statusCode,
  ).toBe(201);
  expect((await send('POST', STAGING, { key: 'STRIPE_API_KEY', value: values.staging })).statusCode).toBe(
    201,
  );
  const etag = {
    default: (await send('GET', '/api/secrets/STRIPE_API_KEY')).headers.etag as string,
    staging: (await send('GET', `${STAGING}/STRIPE_API_KEY`)).headers.etag as string,
  };
  expect(etag.staging).not.toBe(etag.default);
  return { values, etag };
}

describe('conditional requests in a named environment', () => {
  it("If-None-Match and If-Match are judged against the addressed environment's secret", async () => {
    const { values, etag } = await setup();
    // 304 for staging's own tag; default's tag is another secret's: the value comes.
    expect(
      (await send('GET', `${STAGING}/STRIPE_API_KEY`, undefined, { 'if-none-match': etag.staging }))
        .statusCode,
    ).toBe(304);
    const other = await send('GET', `${STAGING}/STRIPE_API_KEY`, undefined, {
      'if-none-match': etag.default,
    });
    expect(other.statusCode).toBe(200);
    expect(other.json().value).toBe(values.staging);

    // default's tag on every conditional staging change: 412 with staging's tag, nothing changed.
    for (const [method, url, body] of [
      ['PUT', `${STAGING}/STRIPE_API_KEY`, { value: secretValue() }],
      ['DELETE', `${STAGING}/STRIPE_API_KEY`, undefined],
      ['POST', `${STAGING}/STRIPE_API_KEY/rollback`, { version: 1 }],
    ] as const) {
      const r = await expectNothingChanged(t.db, `${method} ${url}`, () =>
        send(method, url, body, { 'if-match': etag.default }),
      );
      expect(r.statusCode, `${method} ${url}`).toBe(412);
      expect(r.headers.etag).toBe(etag.staging);
    }
    // Staging's own tag applies; default's secret keeps its tag and value.
    const v2 = secretValue('staging2');
    const put = await send('PUT', `${STAGING}/STRIPE_API_KEY`, { value: v2 }, { 'if-match': etag.staging });
    expect(put.statusCode).toBe(200);
    const e2 = put.headers.etag as string;
    expect(e2).not.toBe(etag.staging);
    expect((await send('GET', '/api/secrets/STRIPE_API_KEY')).headers.etag).toBe(etag.default);
    expect((await send('GET', '/api/secrets/STRIPE_API_KEY')).json().value).toBe(values.default);

    // Delete, restore and purge in staging are conditional on staging's tags.
    const del = await send('DELETE', `${STAGING}/STRIPE_API_KEY`, undefined, { 'if-match': e2 });
    expect(del.statusCode).toBe(200);
    const e3 = del.headers.etag as string;
    expect(
      (await send('POST', `${STAGING}/STRIPE_API_KEY/restore`, undefined, { 'if-match': etag.default }))
        .statusCode,
    ).toBe(412);
    const restored = await send('POST', `${STAGING}/STRIPE_API_KEY/restore`, undefined, { 'if-match': e3 });
    expect(restored.statusCode).toBe(200);
    const e4 = restored.headers.etag as string;
    const del2 = await send('DELETE', `${STAGING}/STRIPE_API_KEY`, undefined, { 'if-match': e4 });
    expect(
      (await send('DELETE', `${STAGING}/STRIPE_API_KEY?purge=true`, undefined, { 'if-match': e4 }))
        .statusCode,
    ).toBe(412);
    expect(
      (
        await send('DELETE', `${STAGING}/STRIPE_API_KEY?purge=true`, undefined, {
          'if-match': del2.headers.etag as string,
        })
      ).statusCode,
    ).toBe(200);
    expect(await t.db.query(`SELECT environment FROM secrets WHERE key = 'STRIPE_API_KEY'`)).toEqual([
      { environment: 'default' },
    ]);
  });

  it('a batch import checks ifNoneMatch and ifMatch within its environment, all or nothing', async () => {
    const { values, etag } = await setup();
    // ONLY_DEFAULT exists in default only: "create if absent" in production creates it.
    expect(
      (await send('POST', '/api/secrets', { key: 'ONLY_DEFAULT', value: secretValue() })).statusCode,
    ).toBe(201);
    const prod = '/api/environments/production/secrets/batch';
    const made = await send('POST', prod, {
      secrets: [{ key: 'ONLY_DEFAULT', value: secretValue('prod'), ifNoneMatch: '*' }],
    });
    expect(made.statusCode, made.body).toBeLessThan(300);
    expect(
      await t.db.query(`SELECT environment FROM secrets WHERE key = 'ONLY_DEFAULT' ORDER BY environment`),
    ).toEqual([{ environment: 'default' }, { environment: 'production' }]);

    // In staging: default's tag is stale there, and STRIPE_API_KEY exists there: both refuse
    // the whole batch, including the entry that would have succeeded alone.
    for (const bad of [
      { key: 'STRIPE_API_KEY', value: secretValue(), ifMatch: etag.default },
      { key: 'STRIPE_API_KEY', value: secretValue(), ifNoneMatch: '*' },
    ]) {
      const r = await expectNothingChanged(t.db, JSON.stringify(bad.key), () =>
        send('POST', `${STAGING}/batch`, { secrets: [{ key: 'NEW_IN_STAGING', value: secretValue() }, bad] }),
      );
      expect(r.statusCode).toBe(412);
    }
    const ok = await send('POST', `${STAGING}/batch`, {
      secrets: [{ key: 'STRIPE_API_KEY', value: secretValue('batch'), ifMatch: etag.staging }],
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await send('GET', '/api/secrets/STRIPE_API_KEY')).json().value).toBe(values.default);
  });
});

describe('templates resolve within their environment', () => {
  it('a reference to a key that only another environment holds is unresolved, and its value never appears', async () => {
    const { values } = await setup();
    expect(
      (await send('POST', '/api/secrets', { key: 'DEFAULT_ONLY', value: secretValue('d') })).statusCode,
    ).toBe(201);
    const r = await send('POST', `${STAGING}/render`, {
      template: 'a={{Secrets.STRIPE_API_KEY}} b={{Secrets.DEFAULT_ONLY}}',
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toBe('Unresolved secret reference(s): DEFAULT_ONLY');
    expect(r.body).not.toContain(values.default);
    expect(r.body).not.toContain(values.staging);
    // And default renders default's, beside it.
    const d = await send('POST', '/api/secrets/render', { template: '{{Secrets.STRIPE_API_KEY}}' });
    expect(d.json().rendered).toBe(values.default);
    // Export in dotenv form likewise holds staging's keys only.
    const exported = await send('GET', `${STAGING}/export?format=dotenv`);
    expect(exported.statusCode).toBe(200);
    expect(exported.body).toContain('STRIPE_API_KEY=');
    expect(exported.body).not.toContain('DEFAULT_ONLY');
  });
});

describe('refusals for an environment a key does not cover', () => {
  it('answer the same body whether the key exists there or not, and name none of its keys', async () => {
    await setup();
    await send('POST', '/api/environments/production/secrets', { key: 'PROD_ONLY', value: secretValue('p') });
    const k = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list', 'secrets:inject'],
      environments: ['staging'],
    });
    const prod = '/api/environments/production/secrets';
    const strip = (body: string) => {
      const { requestId: _r, ...rest } = JSON.parse(body) as Record<string, unknown>;
      return rest;
    };
    for (const h of [bearer(k.token), apiKey(k.token)]) {
      for (const [method, path, body] of [
        ['GET', '/{k}', undefined],
        ['GET', '/{k}/versions', undefined],
        ['PUT', '/{k}', { value: 'x-changed' }],
        ['DELETE', '/{k}', undefined],
        ['POST', '/{k}/rollback', { version: 1 }],
        ['POST', '/{k}/restore', undefined],
        ['POST', '/render', { template: '{{Secrets.{k}}}' }],
        ['POST', '', { key: '{k}', value: 'x-new' }],
        ['POST', '/batch', { secrets: [{ key: '{k}', value: 'x-batch' }] }],
      ] as const) {
        const at = (key: string) => {
          const b = body === undefined ? undefined : JSON.parse(JSON.stringify(body).replaceAll('{k}', key));
          return t.app.inject({
            method,
            url: `${prod}${path.replace('{k}', key)}`,
            headers: h,
            ...(b ? { payload: b } : {}),
          });
        };
        const existing = await at('PROD_ONLY');
        const missing = await at('NOT_THERE');
        expect(existing.statusCode, `${method} ${path}`).toBe(403);
        expect(strip(existing.body), `${method} ${path}`).toEqual(strip(missing.body));
        expect(existing.body).not.toContain('PROD_ONLY');
        expect(existing.headers.etag).toBeUndefined();
      }
      const list = await t.app.inject({ method: 'GET', url: prod, headers: h });
      expect(list.statusCode).toBe(403);
      expect(list.body).not.toContain('PROD_ONLY');
    }
  });
});
