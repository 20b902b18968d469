import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { distEntry } from '../helpers/cli.js';

/**
 * Issue 11 item 8 (exp required and bounded by JWT_MAX_TTL; `npm run token -- --ttl` respects
 * it; login issues 15 minutes) and item 12 (no login route without an HS256 signing key, so a
 * right password never meets a 500). The forged-token cases are in
 * test/reliability/token-attacks.test.ts.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (t: TestApp, token: string) =>
  t.app.inject({ method: 'GET', url: '/api/secrets', headers: { authorization: `Bearer ${token}` } });
const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, number>;

describe('maximum token lifetime', () => {
  let t: TestApp;
  let short: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { ROOT_ADMIN_USERNAME: 'root', ROOT_ADMIN_PASSWORD: 'pw-123456789' } });
    short = await createTestApp({ env: { JWT_MAX_TTL: '1h' } });
  });
  afterAll(async () => {
    await t?.close();
    await short?.close();
  });

  it('accepts tokens up to JWT_MAX_TTL (default 24 h) and refuses longer ones with 401', async () => {
    expect((await read(t, t.token('a', { ttlSeconds: 23 * 3600 }))).statusCode).toBe(200);
    const long = await read(t, t.token('a', { ttlSeconds: 25 * 3600 }));
    expect(long.statusCode).toBe(401);
    expect(long.json().message).toBe(
      'Invalid token: the token lives longer than the maximum lifetime this service accepts',
    );
    expect((await read(short, short.token('a', { ttlSeconds: 1800 }))).statusCode).toBe(200);
    expect((await read(short, short.token('a', { ttlSeconds: 2 * 3600 }))).statusCode).toBe(401);
  });

  it('refuses a token once it has expired, even one it accepted a moment before', async () => {
    // Verified tokens are remembered (src/auth/jwt.ts); the memory must not outlive exp.
    // The clock is moved, not waited for: a minute-long token is surely valid on the first
    // read, then Date (which both fast-jwt and the memory read) is set 1 ms either side of
    // exp. (At exactly exp fast-jwt still accepts: its rule is now <= exp.) Only Date is
    // faked: timers and I/O run as usual.
    const token = t.token('a', { ttlSeconds: 60 });
    expect((await read(t, token)).statusCode).toBe(200);
    const exp = claimsOf(token).exp ?? 0;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(exp * 1000 - 1);
      expect((await read(t, token)).statusCode).toBe(200);
      vi.setSystemTime(exp * 1000 + 1);
      const late = await read(t, token);
      expect(late.statusCode).toBe(401);
      expect(late.json().message).toBe('Invalid token: the token has expired');
    } finally {
      vi.useRealTimers();
    }
  });

  it('login issues a 15-minute token', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/admin/sessions',
      payload: { username: 'root', password: 'pw-123456789' },
    });
    expect(res.statusCode).toBe(200);
    const c = claimsOf(res.json().accessToken);
    expect((c.exp ?? 0) - (c.iat ?? 0)).toBe(15 * 60);
    expect((await read(t, res.json().accessToken)).statusCode).toBe(200);
  });

  it('npm run token refuses a --ttl above JWT_MAX_TTL', async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [distEntry('cli/token'), ...args], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', JWT_SECRET: t.jwtSecret, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const refused = await run(['--ttl', '2d']);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('--ttl 2d is longer than the service accepts (JWT_MAX_TTL, 86400 s)');
    const ok = await run(['--ttl', '24h', '--sub', 'ops']);
    expect(ok.code).toBe(0);
    expect((await read(t, ok.stdout.trim())).statusCode).toBe(200);
  });
});

describe('login on an RS256-only service (item 12)', () => {
  let r: TestApp;
  beforeAll(async () => {
    const { publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    r = await createTestApp({
      env: {
        JWT_ALGORITHM: 'RS256',
        JWT_PUBLIC_KEY: publicKey,
        ROOT_ADMIN_USERNAME: 'root',
        ROOT_ADMIN_PASSWORD: 'right-password',
      },
    });
  });
  afterAll(() => r?.close());

  it('has no login route: the right and a wrong password both get 404, never 500', async () => {
    for (const password of ['right-password', randomBytes(8).toString('hex')]) {
      const res = await r.app.inject({
        method: 'POST',
        url: '/api/auth/admin/sessions',
        payload: { username: 'root', password },
      });
      expect(res.statusCode).toBe(404);
      expect(res.json().error).toBe('NOT_FOUND');
    }
  });
});
