import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { type TestRedis, testRedis } from '../helpers/redis-server.js';
import { secretValue } from '../helpers/secrets.js';

const open: TestApp[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

async function app(env: Record<string, string>, schema?: string) {
  const t = await createTestApp({
    env: { AUDIT_SEAL_INTERVAL_MS: '0', ...env },
    ...(schema ? { schema } : {}),
  });
  open.push(t);
  return t;
}

async function seed(t: TestApp, key: string) {
  const r = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key, value: secretValue() },
  });
  expect(r.statusCode).toBe(201);
}

const read = (t: TestApp, headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
  t.app.inject({ method: 'GET', url: '/api/secrets/RL_A', headers, remoteAddress });

function expect429(res: Awaited<ReturnType<typeof read>>) {
  expect(res.statusCode, res.body).toBe(429);
  const retry = Number(res.headers['retry-after']);
  expect(retry).toBeGreaterThanOrEqual(1);
  expect(retry).toBeLessThanOrEqual(60);
  expect(res.json()).toEqual({
    error: 'RATE_LIMITED',
    message: `Too many requests: retry in ${retry} s`,
    statusCode: 429,
    nextActions: 'Wait for Retry-After seconds',
  });
}

describe('one instance', () => {
  it('limits value reads per identity', async () => {
    const t = await app({ READ_RATE_LIMIT: '3' });
    await seed(t, 'RL_A');
    for (let i = 0; i < 3; i++) expect((await read(t, t.auth('alice'))).statusCode).toBe(200);
    expect429(await read(t, t.auth('alice')));
    // Another identity has its own budget, from the same IP.
    expect((await read(t, t.auth('bob'))).statusCode).toBe(200);
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    for (let i = 0; i < 3; i++) expect((await read(t, bearer(k.token))).statusCode).toBe(200);
    expect429(await read(t, bearer(k.token)));
    // Only value reads count: alice can still list and write.
    const list = await t.app.inject({ method: 'GET', url: '/api/secrets', headers: t.auth('alice') });
    expect(list.statusCode).toBe(200);
    // A limited read is refused and recorded as such (issue 10: refused attempts leave a row).
    const rows = await t.db.query<{ outcome: string }>(
      `SELECT outcome FROM audit_log WHERE action = 'secret.read' AND actor = 'admin:alice' ORDER BY id`,
    );
    expect(rows.map((r) => r.outcome)).toEqual(['success', 'success', 'success', 'rate_limited']);
  });

  it('counts every value export, render and ?version= reads return (issue 11 item 7)', async () => {
    const t = await app({ READ_RATE_LIMIT: '6' });
    for (const k of ['RL_A', 'RL_B', 'RL_C']) await seed(t, k);
    const as = t.auth('carol');
    const exp = () => t.app.inject({ method: 'GET', url: '/api/secrets/export?prefix=RL_', headers: as });
    const render = (template: string) =>
      t.app.inject({ method: 'POST', url: '/api/secrets/render', headers: as, payload: { template } });
    expect((await exp()).statusCode).toBe(200); // 3 values: 3 left
    const versionRead = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/RL_A?version=1',
      headers: as,
    });
    expect(versionRead.statusCode).toBe(200); // 2 left
    // Three values do not fit in the two reads left: refused whole, nothing counted.
    expect429(await exp());
    expect((await render('{{Secrets.RL_A}} {{Secrets.RL_B}} {{Secrets.RL_A}}')).statusCode).toBe(200); // 0 left
    expect429(await render('{{Secrets.RL_C}}'));
    expect429(await t.app.inject({ method: 'GET', url: '/api/secrets/RL_A?version=1', headers: as }));
    // Refused bulk reads leave no success row (one row per secret returned: issue 10).
    const rows = await t.db.query<{ action: string; n: number }>(
      `SELECT action, count(*)::int AS n FROM audit_log WHERE actor = 'admin:carol' AND outcome = 'success'
       GROUP BY action ORDER BY action`,
    );
    expect(rows).toEqual([
      { action: 'secret.export', n: 3 },
      { action: 'secret.read', n: 1 },
      { action: 'secret.render', n: 2 },
    ]);
  });

  it('limits failed authentications per IP, but never refuses a credential that verifies', async () => {
    const t = await app({ AUTH_FAILURE_RATE_LIMIT: '3' });
    await seed(t, 'RL_A');
    for (let i = 0; i < 3; i++) {
      expect((await read(t, { authorization: 'Bearer wrong' }, '10.1.1.1')).statusCode).toBe(401);
    }
    expect429(await read(t, { authorization: 'Bearer wrong' }, '10.1.1.1'));
    expect429(await read(t, bearer(`ik_${'a'.repeat(64)}`), '10.1.1.1'));
    // Issue 11 item 6: one noisy client behind a shared address locks out no valid caller.
    expect((await read(t, t.auth(), '10.1.1.1')).statusCode).toBe(200);
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    expect((await read(t, bearer(k.token), '10.1.1.1')).statusCode).toBe(200);
    expect429(await read(t, { authorization: 'Bearer wrong' }, '10.1.1.1'));
    // Refusals while blocked are cheap: no audit row each (only the three counted failures).
    const failed = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.failed' AND client_ip = '10.1.1.1'`,
    );
    expect(failed[0]?.n).toBe(3);
    // Other addresses are unaffected, and successful requests never count.
    for (let i = 0; i < 5; i++) expect((await read(t, t.auth(), '10.1.1.2')).statusCode).toBe(200);
    expect((await read(t, {}, '10.1.1.2')).statusCode).toBe(401);
    // The three refused while blocked are counted in one summary row for the address, written
    // when the app closes (as at the end of each window).
    await t.app.close();
    const summary = await t.db.query<{ actor: string; key: string; version: number; client_ip: string }>(
      `SELECT actor, key, version, client_ip FROM audit_log WHERE action = 'refusals.suppressed'`,
    );
    expect(summary).toEqual([
      {
        actor: 'anonymous',
        key: expect.stringMatching(/^AUTH_FAILURE_RATE_LIMIT /),
        version: 3,
        client_ip: '10.1.1.1',
      },
    ]);
  });

  it('keeps the stricter limit on the login endpoint; failed logins are audited and count as failed authentications', async () => {
    const t = await app({
      ROOT_ADMIN_USERNAME: 'root',
      ROOT_ADMIN_PASSWORD: 'pw-123456',
      LOGIN_RATE_LIMIT: '2',
      AUTH_FAILURE_RATE_LIMIT: '2',
    });
    await seed(t, 'RL_A');
    const login = () =>
      t.app.inject({
        method: 'POST',
        url: '/api/auth/admin/sessions',
        payload: { username: 'root', password: 'nope' },
      });
    expect((await login()).statusCode).toBe(401);
    expect((await login()).statusCode).toBe(401);
    const third = await login();
    expect(third.statusCode).toBe(429);
    expect(third.json().error).toBe('RATE_LIMITED');
    expect(third.headers['retry-after']).toBeDefined();
    const rows = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.failed' AND outcome = 'bad_login' AND client_ip = '127.0.0.1'`,
    );
    expect(rows[0]?.n).toBe(2);
    // Two failed logins used up this IP's failed-authentication budget for the whole API:
    // bad credentials are refused at once, a valid token still works.
    expect429(await read(t, { authorization: 'Bearer wrong' }));
    expect((await read(t, t.auth())).statusCode).toBe(200);
    // The 429s left no row each; each limit's are counted in one summary row for the address.
    await t.app.suppressedRefusals.flush();
    const summary = await t.db.query<{ actor: string; key: string; version: number }>(
      `SELECT actor, split_part(key, ' ', 1) AS key, version FROM audit_log
       WHERE action = 'refusals.suppressed' AND client_ip = '127.0.0.1' ORDER BY key`,
    );
    expect(summary).toEqual([
      { actor: 'anonymous', key: 'AUTH_FAILURE_RATE_LIMIT', version: 1 },
      { actor: 'anonymous', key: 'LOGIN_RATE_LIMIT', version: 1 },
    ]);
  });
});

describe('two instances sharing Redis', () => {
  const namespace = `test-rl-${randomBytes(6).toString('hex')}:`;
  // TEST_REDIS_URL (.ci/run starts one on a free port), else a redis-server of this file's own.
  let server: TestRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await testRedis();
    redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    if (redis) {
      const keys = await redis.keys(`${namespace}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    await server?.stop();
  });

  async function pair(env: Record<string, string>) {
    const shared = {
      REDIS_URL: server.url,
      RATE_LIMIT_NAMESPACE: `${namespace}${randomBytes(3).toString('hex')}:`,
      ...env,
    };
    const a = await app(shared);
    // Same keys and, on PostgreSQL, the same data; PGlite instances each have their own memory.
    const b = await app({ ...a.env, ...shared }, a.schema);
    await seed(a, 'RL_A');
    if (backend === 'pglite') await seed(b, 'RL_A');
    return [a, b] as const;
  }

  it('share the read limit', async () => {
    const [a, b] = await pair({ READ_RATE_LIMIT: '4' });
    const h = a.auth('carol');
    expect((await read(a, h)).statusCode).toBe(200);
    expect((await read(b, h)).statusCode).toBe(200);
    expect((await read(a, h)).statusCode).toBe(200);
    expect((await read(b, h)).statusCode).toBe(200);
    expect429(await read(a, h));
    expect429(await read(b, h));
    expect((await read(b, a.auth('dave'))).statusCode).toBe(200);
    const keys = await redis.keys(`${namespace}*`);
    expect(keys.some((k) => k.includes('read:admin:carol'))).toBe(true);
  });

  it('share the refusal limit, summarising what it refused without a row, in one Redis command per request at most', async () => {
    const [a, b] = await pair({ REFUSAL_RATE_LIMIT: '3' });
    // Every rate-limit command on this pair's counters, as Redis saw them (MONITOR).
    const monitor = await redis.monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: unknown, args: string[], source: string) => {
      // Round trips only: not the commands the limiter's scripts run inside Redis.
      if (source !== 'lua' && args.some((x) => x.includes(namespace))) seen.push(args);
    });
    /** The commands seen since the last call, once Redis has shown a marker sent after them. */
    const commands = async () => {
      const marker = `${namespace}marker-${randomBytes(4).toString('hex')}`;
      await redis.get(marker);
      while (!seen.some((c) => c.includes(marker))) await new Promise((r) => setImmediate(r));
      return seen.splice(0).filter((c) => !c.includes(marker));
    };
    const bad = (t: TestApp, headers: Record<string, string>) =>
      t.app.inject({ method: 'GET', url: '/api/secrets/%00', headers });
    try {
      // Redis loads the limiter's two scripts on first use (a failed EVALSHA, then EVAL):
      // loaded here, so each command below is one.
      for (let i = 0; i < 4; i++) await bad(a, a.auth('warm-up'));
      await commands();
      // A caller that is never refused: its value reads cost the read limit's one command
      // each, and nothing for the refusal limit.
      for (const t of [a, b, a, b]) expect((await read(t, a.auth('carol'))).statusCode).toBe(200);
      const carol = await commands();
      expect(carol.filter((c) => c.some((x) => x.includes('read:admin:carol')))).toHaveLength(4);
      expect(carol.filter((c) => !c.some((x) => x.includes('read:admin:carol')))).toEqual([]);

      // A caller refused (400: a key with NUL) on both instances: three on a reach the limit.
      const h = a.auth('mallory');
      for (let i = 0; i < 3; i++) expect((await bad(a, h)).statusCode).toBe(400);
      // b has not seen mallory reach it: the request is served (refused, its own row) and
      // counted, which tells b (the trade-off in src/http/rate-limits.ts overRefusals).
      expect((await bad(b, h)).statusCode).toBe(400);
      // From now on both answer 429 before any work, without a row each.
      expect((await bad(a, h)).statusCode).toBe(429);
      expect((await bad(b, h)).statusCode).toBe(429);
      expect((await read(b, h)).statusCode).toBe(429);
      const mallory = await commands();
      // Refused requests: one count each (4); past the limit, one peek each (3), no count.
      const peeks = mallory.filter((c) => c.some((x) => x.includes('refused:admin:mallory')));
      expect(peeks).toHaveLength(7);
    } finally {
      monitor.disconnect();
    }

    // Every refusal is in the audit log once: 4 rows of their own, 3 in the summary rows.
    for (const t of [a, b]) await t.app.suppressedRefusals.flush();
    const dbs = backend === 'pglite' ? [a.db, b.db] : [a.db];
    let own = 0;
    let summarised = 0;
    for (const db of dbs) {
      const [r] = await db.query<{ own: number; summarised: number }>(
        `SELECT count(*) FILTER (WHERE action <> 'refusals.suppressed')::int AS own,
                coalesce(sum(version) FILTER (WHERE action = 'refusals.suppressed'), 0)::int AS summarised
         FROM audit_log WHERE actor = 'admin:mallory'`,
      );
      own += r?.own ?? 0;
      summarised += r?.summarised ?? 0;
    }
    expect({ own, summarised }).toEqual({ own: 4, summarised: 3 });
  });

  it('share the failed-authentication limit', async () => {
    const [a, b] = await pair({ AUTH_FAILURE_RATE_LIMIT: '2' });
    expect((await read(a, { authorization: 'Bearer x' }, '10.2.2.2')).statusCode).toBe(401);
    expect((await read(b, { authorization: 'Bearer x' }, '10.2.2.2')).statusCode).toBe(401);
    expect429(await read(a, { authorization: 'Bearer x' }, '10.2.2.2'));
    expect429(await read(b, { authorization: 'Bearer x' }, '10.2.2.2'));
    expect((await read(b, a.auth(), '10.2.2.2')).statusCode).toBe(200);
  });
});

describe('Redis unreachable', () => {
  it('keeps serving (without limits) rather than failing every request', async () => {
    const t = await app({ REDIS_URL: 'redis://127.0.0.1:1', READ_RATE_LIMIT: '1' });
    await seed(t, 'RL_A');
    for (let i = 0; i < 3; i++) expect((await read(t, t.auth())).statusCode).toBe(200);
  });
});
