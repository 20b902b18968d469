import { generateKeyPairSync } from 'node:crypto';
import { createSigner } from 'fast-jwt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Every secrets route, so each auth failure is checked on all of them. */
const routes = [
  { method: 'GET', url: '/api/secrets' },
  { method: 'POST', url: '/api/secrets', payload: { key: 'NEW_ONE', value: 'new-value-123' } },
  { method: 'GET', url: '/api/secrets/GUARDED' },
  { method: 'PUT', url: '/api/secrets/GUARDED', payload: { value: 'changed-value-123' } },
  { method: 'DELETE', url: '/api/secrets/GUARDED' },
] as const;

let t: TestApp;
let value: string;
beforeAll(async () => {
  // Every test here is a failed authentication from one IP: lift the per-IP failure limit
  // (it has its own tests in test/api/rate-limits.test.ts).
  t = await createTestApp({ env: { AUTH_FAILURE_RATE_LIMIT: '100000' } });
});
afterAll(async () => t?.close());
beforeEach(async () => {
  await t.reset();
  value = secretValue('guarded');
  expect((await api(t).create({ key: 'GUARDED', value })).statusCode).toBe(201);
});

async function expectRefused(
  app: TestApp,
  authorization: string | undefined,
  status: number,
  error: string,
  message: RegExp,
) {
  for (const r of routes) {
    const res = await app.app.inject({
      method: r.method,
      url: r.url,
      ...('payload' in r ? { payload: r.payload } : {}),
      headers: authorization === undefined ? {} : { authorization },
    });
    expect(res.statusCode, `${r.method} ${r.url}`).toBe(status);
    expect(res.json()).toMatchObject({ error, statusCode: status, message: expect.stringMatching(message) });
    expect(res.json().nextActions).toEqual(expect.any(String));
    expect(res.body).not.toContain(value);
  }
  // Nothing was created, changed or deleted.
  const rows = await app.db.query<{ key: string; is_active: boolean; current_version: number }>(
    'SELECT key, is_active, current_version FROM secrets',
  );
  expect(rows).toEqual([{ key: 'GUARDED', is_active: true, current_version: 1 }]);
}

describe('HS256 guard', () => {
  it('a valid admin token is accepted', async () => {
    const res = await api(t).reveal('GUARDED');
    expect(res.json()).toEqual({ key: 'GUARDED', value });
  });

  it('no Authorization header: 401 AUTH_INVALID_CREDENTIALS', async () => {
    await expectRefused(t, undefined, 401, 'AUTH_INVALID_CREDENTIALS', /^Authentication required/);
    await expectRefused(t, '', 401, 'AUTH_INVALID_CREDENTIALS', /^Authentication required/);
  });

  it.each([
    ['Basic credentials', 'Basic YWRtaW46cGFzc3dvcmQ='],
    ['the bare token', 'TOKEN'],
    ['lowercase scheme', 'bearer TOKEN'],
    ['Bearer without a token', 'Bearer'],
    ['Bearer and a space', 'Bearer '],
    ['two spaces', 'Bearer  TOKEN'],
    ['a trailing word', 'Bearer TOKEN extra'],
  ])('malformed header (%s): 401 AUTH_UNAUTHORIZED', async (_name, header) => {
    const token = t.token();
    await expectRefused(t, header.replace('TOKEN', token), 401, 'AUTH_UNAUTHORIZED', /^Invalid token/);
  });

  it('a token that is not a JWT: 401', async () => {
    await expectRefused(t, 'Bearer not.a.jwt', 401, 'AUTH_UNAUTHORIZED', /malformed/);
    await expectRefused(t, 'Bearer abc', 401, 'AUTH_UNAUTHORIZED', /malformed/);
  });

  it('a bad signature: 401, hinting at another JWT_SECRET or DATA_DIR', async () => {
    const other = createSigner({ key: 'another-secret-that-is-at-least-32-bytes-long', expiresIn: 60_000 });
    await expectRefused(
      t,
      `Bearer ${other({ sub: 'x', role: 'project_admin' })}`,
      401,
      'AUTH_UNAUTHORIZED',
      /signature does not verify \(was it minted with a different JWT_SECRET, or in another DATA_DIR/,
    );
    // A valid token with its payload swapped for one that claims more.
    const [h, , s] = t.token('x', { role: 'viewer' }).split('.');
    const forged = `${h}.${b64({ sub: 'x', role: 'project_admin', exp: now() + 60 })}.${s}`;
    await expectRefused(t, `Bearer ${forged}`, 401, 'AUTH_UNAUTHORIZED', /signature/);
  });

  it('alg none: 401', async () => {
    const payload = b64({ sub: 'x', role: 'project_admin', exp: now() + 60 });
    await expectRefused(
      t,
      `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`,
      401,
      'AUTH_UNAUTHORIZED',
      /^Invalid token/,
    );
    await expectRefused(
      t,
      `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${payload}`,
      401,
      'AUTH_UNAUTHORIZED',
      /^Invalid token/,
    );
  });

  it('another algorithm with the same secret (HS512): 401', async () => {
    const sign = createSigner({ key: t.jwtSecret, algorithm: 'HS512', expiresIn: 60_000 });
    await expectRefused(
      t,
      `Bearer ${sign({ sub: 'x', role: 'project_admin' })}`,
      401,
      'AUTH_UNAUTHORIZED',
      /algorithm/,
    );
  });

  it('expired: 401 saying so', async () => {
    const sign = createSigner({ key: t.jwtSecret });
    const token = sign({ sub: 'x', role: 'project_admin', iat: now() - 120, exp: now() - 60 });
    await expectRefused(t, `Bearer ${token}`, 401, 'AUTH_UNAUTHORIZED', /expired/);
  });

  it('not yet valid (nbf): 401 saying so', async () => {
    const sign = createSigner({ key: t.jwtSecret });
    const token = sign({ sub: 'x', role: 'project_admin', nbf: now() + 3600, exp: now() + 7200 });
    await expectRefused(t, `Bearer ${token}`, 401, 'AUTH_UNAUTHORIZED', /not valid yet/);
  });

  it('wrong role or no role: 403 AUTH_UNAUTHORIZED', async () => {
    await expectRefused(
      t,
      `Bearer ${t.token('x', { role: 'authenticated' })}`,
      403,
      'AUTH_UNAUTHORIZED',
      /^Admin access required/,
    );
    await expectRefused(
      t,
      `Bearer ${t.token('x', { role: 'PROJECT_ADMIN' })}`,
      403,
      'AUTH_UNAUTHORIZED',
      /^Admin access required/,
    );
    const sign = createSigner({ key: t.jwtSecret, expiresIn: 60_000 });
    await expectRefused(
      t,
      `Bearer ${sign({ sub: 'x' })}`,
      403,
      'AUTH_UNAUTHORIZED',
      /^Admin access required/,
    );
    await expectRefused(
      t,
      `Bearer ${sign({ sub: 'x', role: ['project_admin'] })}`,
      403,
      'AUTH_UNAUTHORIZED',
      /^Admin access required/,
    );
  });

  it('the guard runs before body validation: an unauthenticated bad body learns nothing', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/secrets', payload: { nope: 1 } });
    expect(res.statusCode).toBe(401);
  });

  it('public routes need no token', async () => {
    for (const url of ['/health', '/ready', '/openapi.json']) {
      expect((await t.app.inject({ url })).statusCode, url).toBe(200);
    }
  });
});

describe('configured role, issuer and audience', () => {
  let s: TestApp;
  beforeAll(async () => {
    s = await createTestApp({
      env: {
        JWT_ISSUER: 'https://auth.example.test',
        JWT_AUDIENCE: 'secrets-api',
        ADMIN_ROLE: 'ops_admin',
        AUTH_FAILURE_RATE_LIMIT: '100000',
      },
    });
  });
  afterAll(async () => s?.close());
  beforeEach(async () => {
    await s.reset();
    value = secretValue('iss');
    await api(s).create({ key: 'GUARDED', value });
  });
  const signer = (claims: Record<string, unknown>) =>
    `Bearer ${createSigner({ key: s.jwtSecret, expiresIn: 60_000 })({ sub: 'x', role: 'ops_admin', ...claims })}`;

  it('the right issuer, audience and role are accepted', async () => {
    const res = await s.app.inject({
      url: '/api/secrets/GUARDED',
      headers: { authorization: signer({ iss: 'https://auth.example.test', aud: 'secrets-api' }) },
    });
    expect(res.json()).toEqual({ key: 'GUARDED', value });
  });

  it('a wrong or missing issuer: 401', async () => {
    await expectRefused(
      s,
      signer({ iss: 'https://evil.test', aud: 'secrets-api' }),
      401,
      'AUTH_UNAUTHORIZED',
      /issuer or audience/,
    );
    await expectRefused(
      s,
      signer({ aud: 'secrets-api' }),
      401,
      'AUTH_UNAUTHORIZED',
      /lacks the issuer or audience/,
    );
  });

  it('a wrong or missing audience: 401', async () => {
    await expectRefused(
      s,
      signer({ iss: 'https://auth.example.test', aud: 'other-api' }),
      401,
      'AUTH_UNAUTHORIZED',
      /issuer or audience/,
    );
    await expectRefused(
      s,
      signer({ iss: 'https://auth.example.test' }),
      401,
      'AUTH_UNAUTHORIZED',
      /lacks the issuer or audience/,
    );
  });

  it('the default role project_admin is not admin when ADMIN_ROLE is set', async () => {
    await expectRefused(
      s,
      signer({ iss: 'https://auth.example.test', aud: 'secrets-api', role: 'project_admin' }),
      403,
      'AUTH_UNAUTHORIZED',
      /^Admin access required/,
    );
  });
});

describe('RS256 with JWT_PUBLIC_KEY', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  let r: TestApp;
  beforeAll(async () => {
    r = await createTestApp({
      env: { JWT_ALGORITHM: 'RS256', JWT_PUBLIC_KEY: publicKey, AUTH_FAILURE_RATE_LIMIT: '100000' },
    });
  });
  afterAll(async () => r?.close());
  beforeEach(async () => {
    await r.reset();
    value = secretValue('rs');
    // Seed through SQL-free HTTP with a properly signed RS256 token.
    const res = await r.app.inject({
      method: 'POST',
      url: '/api/secrets',
      payload: { key: 'GUARDED', value },
      headers: { authorization: rs({ sub: 'seeder' }) },
    });
    expect(res.statusCode).toBe(201);
  });
  const rs = (claims: Record<string, unknown>) =>
    `Bearer ${createSigner({ key: privateKey, algorithm: 'RS256', expiresIn: 60_000 })({ role: 'project_admin', ...claims })}`;

  it('an RS256 token signed with the private key is accepted; lastUsedBy is its sub', async () => {
    const res = await r.app.inject({
      url: '/api/secrets/GUARDED',
      headers: { authorization: rs({ sub: 'lambda-fn' }) },
    });
    expect(res.json()).toEqual({ key: 'GUARDED', value });
    const list = await r.app.inject({ url: '/api/secrets', headers: { authorization: rs({ sub: 'x' }) } });
    expect(list.json().secrets[0].lastUsedBy).toBe('lambda-fn');
  });

  it('an HS256 token (even signed with JWT_SECRET) is refused: the algorithm is pinned', async () => {
    await expectRefused(r, `Bearer ${r.token()}`, 401, 'AUTH_UNAUTHORIZED', /^Invalid token/);
  });

  it('algorithm confusion: HS256 signed with the public key as the secret is refused', async () => {
    const sign = createSigner({ key: publicKey, algorithm: 'HS256', expiresIn: 60_000 });
    await expectRefused(
      r,
      `Bearer ${sign({ sub: 'x', role: 'project_admin' })}`,
      401,
      'AUTH_UNAUTHORIZED',
      /^Invalid token/,
    );
  });

  it('an RS256 token from another key pair is refused', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    const sign = createSigner({ key: other, algorithm: 'RS256', expiresIn: 60_000 });
    await expectRefused(
      r,
      `Bearer ${sign({ sub: 'x', role: 'project_admin' })}`,
      401,
      'AUTH_UNAUTHORIZED',
      /signature/,
    );
  });

  it('an expired RS256 token is refused', async () => {
    const sign = createSigner({ key: privateKey, algorithm: 'RS256' });
    await expectRefused(
      r,
      `Bearer ${sign({ sub: 'x', role: 'project_admin', exp: now() - 10 })}`,
      401,
      'AUTH_UNAUTHORIZED',
      /expired/,
    );
  });
});
