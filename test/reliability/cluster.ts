import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expect } from 'vitest';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { forbid } from './hygiene.js';

/** Shared by the process-level suites (faults, instances): service env, HTTP calls, SQL invariants. */

export function serviceEnv(databaseUrl: string): { env: Record<string, string>; token: string } {
  const env = {
    DATABASE_URL: databaseUrl,
    ENCRYPTION_KEY: forbid(randomBytes(32).toString('base64')),
    JWT_SECRET: forbid(randomBytes(48).toString('base64')),
    DATABASE_POOL_MAX: '10',
    READ_RATE_LIMIT: '1000000',
    AUTH_FAILURE_RATE_LIMIT: '1000000',
  };
  const config = loadConfig({ ...env, NODE_ENV: 'test' });
  const token = forbid(mintAdminToken(config, env.JWT_SECRET, { sub: 'reliability', ttlSeconds: 3600 }));
  return { env, token };
}

export interface Outcome {
  t0: number;
  t1: number;
  status: number;
  retryAfter: string | null;
  etag?: string | null;
  body: string;
  error?: string;
}

/** One HTTP call that never throws: network failures and timeouts come back as `error`. */
export async function call(
  base: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 5_000,
  headers: Record<string, string> = {},
): Promise<Outcome> {
  const t0 = Date.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return {
      t0,
      t1: Date.now(),
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      etag: res.headers.get('etag'),
      body: text,
    };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { t0, t1: Date.now(), status: 0, retryAfter: null, body: '', error: e.cause?.code ?? e.name };
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Lets a storm or an outage run for at least `ms`, and then until `enough()` holds (checked
 * every 20 ms; fails the test after `capMs`): a busy machine lengthens the phase instead of
 * thinning the sample a later count relies on.
 */
export async function runFor(ms: number, enough: () => boolean, what: string, capMs = 60_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < ms || !enough()) {
    if (Date.now() - start > ms + capMs) throw new Error(`${what} did not happen within ${ms + capMs} ms`);
    await sleep(20);
  }
}

/**
 * Storage invariants, in plain SQL: the kept versions are contiguous and end at the current
 * one (the newest MAX_VERSIONS, default 20, are kept: the rest are pruned), nothing half-written.
 */
export async function expectStorageInvariants(
  databaseUrl: string,
): Promise<{ secrets: number; versions: number }> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const gaps = await c.query(
      `SELECT s.key, s.current_version, count(v.version)::int AS n, min(v.version) AS lo, max(v.version) AS hi
       FROM secrets s LEFT JOIN secret_versions v ON v.secret_id = s.id
       GROUP BY s.id, s.key, s.current_version
       HAVING count(v.version) <> LEAST(s.current_version, 20)
           OR max(v.version) <> s.current_version
           OR max(v.version) - min(v.version) + 1 <> count(v.version)`,
    );
    expect(
      gaps.rows,
      'secrets whose kept versions are not the newest, contiguous, ending at current',
    ).toEqual([]);
    const dupKeys = await c.query('SELECT key FROM secrets GROUP BY key HAVING count(*) > 1');
    expect(dupKeys.rows, 'keys with more than one row').toEqual([]);
    const counts = await c.query<{ s: number; v: number }>(
      'SELECT (SELECT count(*)::int FROM secrets) AS s, (SELECT count(*)::int FROM secret_versions) AS v',
    );
    return { secrets: counts.rows[0]!.s, versions: counts.rows[0]!.v };
  } finally {
    await c.end();
  }
}
