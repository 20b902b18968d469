import { describe, expect, it } from 'vitest';
import { createTestApp, useTestApp } from '../helpers/app.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

const PASSWORD = trackValue('correct-horse-battery-staple-42');
const LOGIN = '/api/auth/admin/sessions';
let ip = 0;
// Each test logs in from its own address, so the per-address rate limit never couples tests.
const nextIp = () => `10.0.${Math.floor(++ip / 250)}.${ip % 250}`;

const t = useTestApp({
  env: { ROOT_ADMIN_USERNAME: 'admin', ROOT_ADMIN_PASSWORD: PASSWORD, LOGIN_RATE_LIMIT: '5' },
  resetEachTest: true,
});

const login = (payload: unknown, remoteAddress = nextIp()) =>
  t.app.inject({ method: 'POST', url: LOGIN, payload: payload as object, remoteAddress });

describe('POST /api/auth/admin/sessions', () => {
  it('exchanges the root credentials for a working 15-minute admin token', async () => {
    const res = await login({ username: 'admin', password: PASSWORD });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toEqual({ accessToken: expect.any(String), admin: { sub: 'admin' } });
    expect(res.body).not.toContain(PASSWORD);
    const claims = JSON.parse(Buffer.from(body.accessToken.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ sub: 'admin', role: 'project_admin' });
    expect(claims.exp - claims.iat).toBe(15 * 60);

    const value = secretValue();
    const authorization = `Bearer ${body.accessToken}`;
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      payload: { key: 'VIA_LOGIN', value },
      headers: { authorization },
    });
    expect(created.statusCode).toBe(201);
    const read = await t.app.inject({ url: '/api/secrets/VIA_LOGIN', headers: { authorization } });
    expect(read.json()).toEqual({ key: 'VIA_LOGIN', value });
    const list = await t.app.inject({ url: '/api/secrets', headers: { authorization } });
    expect(list.json().secrets[0].lastUsedBy).toBe('admin');
  });

  it.each([
    ['wrong password', { username: 'admin', password: 'wrong' }],
    ['password with a different case', { username: 'admin', password: PASSWORD.toUpperCase() }],
    ['password prefix', { username: 'admin', password: PASSWORD.slice(0, -1) }],
    ['wrong username', { username: 'root', password: PASSWORD }],
    ['empty strings', { username: '', password: '' }],
  ])('%s: 401 AUTH_INVALID_CREDENTIALS, no token', async (_name, body) => {
    const res = await login(body);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({
      error: 'AUTH_INVALID_CREDENTIALS',
      message: 'Invalid username or password',
      statusCode: 401,
      nextActions: expect.any(String),
    });
    expect(res.body).not.toContain(PASSWORD);
  });

  it.each([
    ['missing password', { username: 'admin' }],
    ['number password', { username: 'admin', password: 1234 }],
    ['array body', ['admin', 'x']],
  ])('%s: 400', async (_name, body) => {
    const res = await login(body);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', statusCode: 400 });
  });

  it(`rate limits an address after LOGIN_RATE_LIMIT attempts: 429 with Retry-After`, async () => {
    const addr = nextIp();
    for (let i = 0; i < 5; i++)
      expect((await login({ username: 'admin', password: 'guess' }, addr)).statusCode).toBe(401);
    const limited = await login({ username: 'admin', password: PASSWORD }, addr);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({
      error: 'RATE_LIMITED',
      statusCode: 429,
      message: expect.stringMatching(/Too many requests/),
    });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.body).not.toContain('accessToken');
    // Another address is not affected.
    expect((await login({ username: 'admin', password: PASSWORD })).statusCode).toBe(200);
  });
});

describe('login disabled', () => {
  it('without ROOT_ADMIN_USERNAME/PASSWORD: 404 whose nextActions says how to enable login, documented', async () => {
    const plain = await createTestApp();
    try {
      const res = await plain.app.inject({
        method: 'POST',
        url: LOGIN,
        payload: { username: 'admin', password: 'x' },
      });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({
        error: 'NOT_FOUND',
        statusCode: 404,
        message: 'Login is not configured on this service',
        nextActions: expect.stringContaining('set ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD'),
      });
      expect(res.json().nextActions).toContain('npm run -s token -- --sub NAME');
      // The served document says the route exists only when login is configured.
      const doc = (await plain.app.inject({ method: 'GET', url: '/openapi.json' })).json();
      const op = doc.paths[LOGIN].post;
      expect(op.description).toMatch(/exists only when ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD are set/);
      expect(Object.keys(op.responses)).toEqual(['404']);
    } finally {
      await plain.close();
    }
  });
});
