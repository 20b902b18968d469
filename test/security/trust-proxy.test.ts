import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * Issue 11 item 4: TRUST_PROXY is a hop count or a list of proxy addresses/CIDRs (`true`
 * is refused at start, see test/unit/config.test.ts), so a client cannot choose its own
 * address by forging X-Forwarded-For, and the derived address must be an IP. Both backends.
 */
const list = (t: TestApp, remoteAddress: string, xff: string | undefined, sub = 'probe') =>
  t.app.inject({
    method: 'GET',
    url: '/api/secrets',
    remoteAddress,
    headers: { ...t.auth(sub), ...(xff === undefined ? {} : { 'x-forwarded-for': xff }) },
  });
const ipsOf = async (t: TestApp, sub: string) =>
  (
    await t.db.query<{ client_ip: string }>(
      `SELECT client_ip FROM audit_log WHERE actor = $1 AND action = 'secret.list' ORDER BY id`,
      [`admin:${sub}`],
    )
  ).map((r) => r.client_ip);

describe('TRUST_PROXY=1 (one proxy in front)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      env: { TRUST_PROXY: '1', AUTH_FAILURE_RATE_LIMIT: '2', AUDIT_SEAL_INTERVAL_MS: '0' },
    });
  });
  afterAll(() => t?.close());

  it('takes the address the proxy appended, not one the client put first', async () => {
    // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy (10.0.0.1) appended the real 203.0.113.9.
    expect((await list(t, '10.0.0.1', '6.6.6.6, 203.0.113.9', 'hop')).statusCode).toBe(200);
    expect((await list(t, '10.0.0.1', undefined, 'hop')).statusCode).toBe(200);
    expect(await ipsOf(t, 'hop')).toEqual(['203.0.113.9', '10.0.0.1']);
  });

  it('refuses a derived address that is not an IP with 400, writing nothing', async () => {
    const res = await list(t, '10.0.0.1', '1.2.3.4, <script>', 'junk');
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe('X-Forwarded-For does not give a valid client IP address');
    expect(await ipsOf(t, 'junk')).toEqual([]);
  });

  it('a client rotating forged addresses stays one address for the auth-failure limit', async () => {
    const bad = (forged: string) =>
      t.app.inject({
        method: 'GET',
        url: '/api/secrets',
        remoteAddress: '10.0.0.1',
        headers: { authorization: 'Bearer wrong', 'x-forwarded-for': `${forged}, 198.51.100.7` },
      });
    expect((await bad('1.1.1.1')).statusCode).toBe(401);
    expect((await bad('2.2.2.2')).statusCode).toBe(401);
    expect((await bad('3.3.3.3')).statusCode).toBe(429);
  });
});

describe('TRUST_PROXY as a list of proxy addresses', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { TRUST_PROXY: '10.0.0.0/8,192.168.1.5', AUDIT_SEAL_INTERVAL_MS: '0' } });
  });
  afterAll(() => t?.close());

  it('skips only the listed proxies from the right', async () => {
    // Two trusted proxies (192.168.1.5 then 10.0.0.1) in front; the client forged 6.6.6.6.
    expect((await list(t, '10.0.0.1', '6.6.6.6, 203.0.113.10, 192.168.1.5', 'chain')).statusCode).toBe(200);
    // A direct caller not in the list: its X-Forwarded-For is ignored.
    expect((await list(t, '198.51.100.1', '6.6.6.6', 'chain')).statusCode).toBe(200);
    expect(await ipsOf(t, 'chain')).toEqual(['203.0.113.10', '198.51.100.1']);
  });
});
