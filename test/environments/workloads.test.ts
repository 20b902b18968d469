import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { githubClaims, type LocalIssuer, startIssuer } from '../helpers/oidc-issuer.js';
import { secretValue } from '../helpers/secrets.js';
import { expectNothingChanged } from '../helpers/unchanged.js';

/**
 * Workload identity and environments: a trust policy's grant names the environments it
 * covers like an access key's; the issued credential carries them (copied at issue time).
 */
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', OIDC_ALLOW_HTTP_ISSUERS: 'true' },
  resetEachTest: true,
});

let gh: LocalIssuer;
beforeAll(async () => {
  gh = await startIssuer({ path: '/gh' });
});
afterAll(async () => gh.close());

const send = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, headers = t.auth()) =>
  t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

const trustBody = (over: Record<string, unknown> = {}) => ({
  name: 'gh-deploy',
  issuer: gh.issuer,
  audiences: ['secrets-service'],
  subject: 'repo:acme/shop:*',
  claims: { repository_id: '123456' },
  scopes: ['secrets:read', 'secrets:list'],
  ...over,
});

async function workloadToken(): Promise<string> {
  const res = await send('POST', '/api/auth/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: await gh.sign(githubClaims()),
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().access_token;
}

describe('trust policies name environments', () => {
  it('covers default when omitted, and refuses unknown environments', async () => {
    const created = await send('POST', '/api/auth/trusts', trustBody());
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().environments).toEqual(['default']);
    const typo = await send('PUT', '/api/auth/trusts/gh-deploy', trustBody({ environments: ['prodution'] }));
    expect(typo.statusCode).toBe(400);
    expect(typo.json().message).toBe('Unknown environment(s): prodution');
  });

  it('a workload for production reads production only, and learns nothing of staging', async () => {
    for (const name of ['staging', 'production'])
      expect((await send('POST', '/api/environments', { name })).statusCode).toBe(201);
    const prod = secretValue('prod');
    for (const [env, value] of [
      ['production', prod],
      ['staging', secretValue('staging')],
    ] as const)
      expect(
        (await send('POST', `/api/environments/${env}/secrets`, { key: 'STRIPE_API_KEY', value })).statusCode,
      ).toBe(201);
    expect(
      (await send('POST', '/api/auth/trusts', trustBody({ environments: ['production'] }))).statusCode,
    ).toBe(201);
    const token = await workloadToken();
    const h = bearer(token);
    const read = await send('GET', '/api/environments/production/secrets/STRIPE_API_KEY', undefined, h);
    expect(read.statusCode).toBe(200);
    expect(read.json().value).toBe(prod);
    for (const url of [
      '/api/environments/staging/secrets/STRIPE_API_KEY',
      '/api/environments/staging/secrets',
      '/api/environments/nowhere/secrets',
      '/api/secrets',
      '/api/environments/staging',
    ]) {
      const res = await send('GET', url, undefined, h);
      expect(res.statusCode, url).toBe(403);
      expect(res.json().message, url).toMatch(
        /^Access key "oidc:gh-deploy:[^"]+" does not cover the (default )?environment/,
      );
    }
    const listed = await send('GET', '/api/environments', undefined, h);
    expect(listed.json().environments.map((e: { name: string }) => e.name)).toEqual(['production']);
    // Narrowing the trust later does not change the credential already issued (it lives at most an hour).
    expect(
      (await send('PUT', '/api/auth/trusts/gh-deploy', trustBody({ environments: ['staging'] }))).statusCode,
    ).toBe(200);
    expect(
      (await send('GET', '/api/environments/production/secrets/STRIPE_API_KEY', undefined, h)).statusCode,
    ).toBe(200);
    expect(
      (
        await send(
          'GET',
          '/api/environments/staging/secrets/STRIPE_API_KEY',
          undefined,
          bearer(await workloadToken()),
        )
      ).statusCode,
    ).toBe(200);
  });
});

describe('a CI credential for staging', () => {
  it('cannot touch production: no write, delete, batch, render or export there, and nothing changes', async () => {
    for (const name of ['staging', 'production'])
      expect((await send('POST', '/api/environments', { name })).statusCode).toBe(201);
    const prod = secretValue('prod');
    expect(
      (await send('POST', '/api/environments/production/secrets', { key: 'DEPLOY_KEY', value: prod }))
        .statusCode,
    ).toBe(201);
    expect(
      (
        await send(
          'POST',
          '/api/auth/trusts',
          trustBody({
            scopes: ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'],
            environments: ['staging'],
          }),
        )
      ).statusCode,
    ).toBe(201);
    const h = bearer(await workloadToken());
    const p = '/api/environments/production/secrets';
    const attempts = [
      ['POST', p, { key: 'NEW_KEY', value: 'x-new' }],
      ['PUT', `${p}/DEPLOY_KEY`, { value: 'x-changed' }],
      ['DELETE', `${p}/DEPLOY_KEY`, undefined],
      ['DELETE', `${p}/DEPLOY_KEY?purge=true`, undefined],
      ['POST', `${p}/DEPLOY_KEY/rollback`, { version: 1 }],
      ['POST', `${p}/batch`, { secrets: [{ key: 'DEPLOY_KEY', value: 'x-batch' }] }],
      ['POST', `${p}/render`, { template: '{{Secrets.DEPLOY_KEY}}' }],
      ['GET', `${p}/export?format=json`, undefined],
      ['GET', `${p}/DEPLOY_KEY`, undefined],
    ] as const;
    await expectNothingChanged(t.db, 'a staging workload in production', async () => {
      for (const [method, url, payload] of attempts) {
        const res = await t.app.inject({ method, url, headers: h, ...(payload ? { payload } : {}) });
        expect(res.statusCode, `${method} ${url}`).toBe(403);
        expect(res.body).not.toContain(prod);
        expect(res.json().message).toMatch(
          /^Access key "oidc:gh-deploy:[^"]+" does not cover the environment production$/,
        );
      }
    });
    // The same credential writes in staging.
    const own = await t.app.inject({
      method: 'POST',
      url: '/api/environments/staging/secrets',
      headers: h,
      payload: { key: 'DEPLOY_KEY', value: secretValue('staging') },
    });
    expect(own.statusCode).toBe(201);
    expect(
      await t.db.query(`SELECT environment FROM secrets WHERE key = 'DEPLOY_KEY' ORDER BY environment`),
    ).toEqual([{ environment: 'production' }, { environment: 'staging' }]);
  });
});
