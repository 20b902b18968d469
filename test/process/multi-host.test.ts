import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { mintAdminToken } from '../../src/auth/mint.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { DatabaseUnavailableError } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createLogger } from '../../src/logger.js';
import { openDatabase, openRuntime, type Runtime } from '../../src/runtime.js';
import { type PgCluster, startCluster, startStandby } from '../helpers/pg-cluster.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';

/**
 * DATABASE_URL with several hosts (libpq syntax, src/db/hosts.ts) against a real primary
 * and a real streaming standby: which host each target_session_attrs picks, a write on a
 * host that turned read-only (25006) answering 503 with Retry-After and the service
 * finding the primary again by itself, and a promotion. Starts its own two clusters (a
 * process suite: runs once whatever TEST_BACKEND says).
 */

let primary: PgCluster;
let standby: PgCluster;

const KEYS = {
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(48).toString('base64'),
};

const hosts = (...cs: PgCluster[]) => cs.map((c) => `127.0.0.1:${c.port}`).join(',');
const url = (attrs: string, ...cs: PgCluster[]) =>
  `postgres://postgres@${hosts(...cs)}/mh?target_session_attrs=${attrs}`;

async function sql(target: PgCluster, text: string) {
  const c = new pg.Client({ connectionString: target.url('mh') });
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

/**
 * Waits until a new session on `target` runs with default_transaction_read_only = `want`:
 * the server reloaded its configuration and signalled its sessions, which apply it before
 * their next statement. Waited for as a condition, not a fixed time (a loaded machine can
 * take longer than any guess).
 */
async function readOnlyIs(target: PgCluster, want: 'on' | 'off') {
  await vi.waitFor(
    async () =>
      expect(await sql(target, 'SHOW default_transaction_read_only')).toEqual([
        { default_transaction_read_only: want },
      ]),
    { timeout: 60_000, interval: 50 },
  );
}

beforeAll(async () => {
  primary = await startCluster();
  const admin = new pg.Client({ connectionString: primary.url() });
  await admin.connect();
  await admin.query('CREATE DATABASE mh');
  await admin.end();
  standby = await startStandby(primary, { applicationName: 'mh_standby' });
}, 120_000);

afterAll(async () => {
  await standby?.destroy();
  await primary?.destroy();
});

function config(databaseUrl: string) {
  return loadConfig({
    NODE_ENV: 'test',
    ...KEYS,
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_MAX: '4',
    AUDIT_SEAL_INTERVAL_MS: '0',
  });
}

describe('a DATABASE_URL listing several hosts', () => {
  it('each target_session_attrs picks the host libpq would', async () => {
    const cases: [string, PgCluster[], boolean][] = [
      // [attribute, hosts in order, expect a standby]
      ['any', [standby, primary], true],
      ['any', [primary, standby], false],
      ['read-write', [standby, primary], false],
      ['primary', [standby, primary], false],
      ['read-only', [primary, standby], true],
      ['standby', [primary, standby], true],
      ['prefer-standby', [primary, standby], true],
    ];
    for (const [attrs, list, wantStandby] of cases) {
      const db = await openDatabase(config(url(attrs, ...list)));
      try {
        const [row] = await db.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
        expect(row?.r, `${attrs} over ${list.map((c) => (c === primary ? 'primary' : 'standby'))}`).toBe(
          wantStandby,
        );
      } finally {
        await db.close();
      }
    }
    // prefer-standby with no standby in the list: takes the primary (second pass).
    const db = await openDatabase(config(url('prefer-standby', primary)));
    try {
      expect((await db.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(false);
    } finally {
      await db.close();
    }
  });

  it('a malformed host list is a configuration error that names no password', async () => {
    const bad = `postgres://postgres:hunter2secret@127.0.0.1:${primary.port},,127.0.0.1/mh`;
    const err = await openDatabase(config(bad)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('empty entry in the host list');
    expect((err as Error).message).not.toContain('hunter2secret');
  });

  it('no statement runs on a host that changed role under the pool (read-only now): unavailable until it is back', async () => {
    const db = await openDatabase(config(url('read-write', primary, standby)));
    try {
      expect((await db.query<{ n: number }>('SELECT 1 AS n'))[0]?.n).toBe(1);
      // A demotion as the pool sees it: every connection cut, the host back read-only.
      // (Value reads through the API fail closed here anyway: their audit row is a write.)
      await sql(primary, 'ALTER SYSTEM SET default_transaction_read_only = on');
      await sql(primary, 'SELECT pg_reload_conf()');
      try {
        await sql(
          primary,
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = 'mh' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        );
        await readOnlyIs(primary, 'on');
        const err = await db.query('SELECT 1').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
      } finally {
        await sql(primary, 'ALTER SYSTEM RESET default_transaction_read_only');
        await sql(primary, 'SELECT pg_reload_conf()');
      }
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        ok = await db.query('SELECT 1').then(
          () => true,
          () => false,
        );
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ok).toBe(true);
    } finally {
      await db.close();
    }
  });

  describe('the service on read-write over [standby, primary]', () => {
    let runtime: Runtime;
    let app: FastifyInstance;
    let auth: { authorization: string };
    const logLines: string[] = [];

    beforeAll(async () => {
      const c = config(url('read-write', standby, primary));
      const logger = createLogger(
        'info',
        new Writable({
          write(chunk, _enc, cb) {
            capturedLogs.push(chunk.toString());
            logLines.push(chunk.toString());
            cb();
          },
        }),
      );
      runtime = await openRuntime(c, logger);
      app = await buildApp({ ...runtime, logger });
      await app.ready();
      auth = {
        authorization: `Bearer ${mintAdminToken(c, runtime.jwtSecret, { sub: 'mh', ttlSeconds: 600 })}`,
      };
    }, 60_000);
    afterAll(async () => {
      await app?.close();
      await runtime?.close();
    });

    const create = (key: string, value: string) =>
      app.inject({ method: 'POST', url: '/api/secrets', headers: auth, payload: { key, value } });

    it('migrates and writes on the primary though the standby is listed first', async () => {
      const value = secretValue('mh');
      expect((await create('MH_ONE', value)).statusCode).toBe(201);
      expect(await sql(primary, `SELECT key FROM secrets WHERE key = 'MH_ONE'`)).toEqual([{ key: 'MH_ONE' }]);
      const r = await app.inject({ method: 'GET', url: '/api/secrets/MH_ONE', headers: auth });
      expect(r.json().value).toBe(value);
      expect(logLines.join('')).toContain('database host chosen');
    });

    it('a host that turned read-only (25006): 503 with Retry-After, then back by itself', async () => {
      // What a demoted primary looks like to the pool's open connections.
      await sql(primary, 'ALTER SYSTEM SET default_transaction_read_only = on');
      await sql(primary, 'SELECT pg_reload_conf()');
      try {
        await readOnlyIs(primary, 'on');
        const r = await create('MH_RO', secretValue('mh'));
        expect(r.statusCode).toBe(503);
        expect(r.headers['retry-after']).toMatch(/^\d+$/);
        // No read-write host now: still 503, never a write somewhere else.
        const again = await create('MH_RO', secretValue('mh'));
        expect(again.statusCode).toBe(503);
      } finally {
        await sql(primary, 'ALTER SYSTEM RESET default_transaction_read_only');
        await sql(primary, 'SELECT pg_reload_conf()');
      }
      // Back without a restart (bounded: the failed resolution is remembered for 250 ms).
      let status = 0;
      for (let i = 0; i < 50 && status !== 201; i++) {
        status = (await create('MH_RO', secretValue('mh'))).statusCode;
        if (status !== 201) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(201);
      expect(logLines.join('')).toContain('database host lost');
    });

    it('after the primary dies and the standby is promoted, writes go to the new primary', async () => {
      await primary.stop('immediate');
      const during = await create('MH_DOWN', secretValue('mh'));
      expect(during.statusCode).toBe(503);
      expect(during.headers['retry-after']).toMatch(/^\d+$/);
      await standby.promote();
      let status = 0;
      for (let i = 0; i < 100 && status !== 201; i++) {
        status = (await create('MH_AFTER', secretValue('mh'))).statusCode;
        if (status !== 201) {
          expect(status).toBe(503);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(status).toBe(201);
      expect(
        await sql(standby, `SELECT key FROM secrets WHERE key IN ('MH_ONE', 'MH_AFTER') ORDER BY key`),
      ).toEqual([{ key: 'MH_AFTER' }, { key: 'MH_ONE' }]);
      const verify = await app.inject({ method: 'GET', url: '/api/audit/verify', headers: auth });
      expect(verify.statusCode).toBe(200);
      expect(verify.json().intact).toBe(true);
    });
  });
});

describe('a replica pool (DATABASE_READ_URL)', () => {
  it('gives up on a statement the replica does not answer within its query timeout, and keeps serving', async () => {
    // The read router sends a replica's failed read to the primary; this pins that a replica
    // that stops answering fails the statement instead of hanging the read.
    const db = openPostgres({ connectionString: standby.url('mh'), max: 2, queryTimeoutMillis: 300 });
    try {
      await expect(db.query('SELECT pg_sleep(5)')).rejects.toThrow(/timeout/i);
      expect(await db.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  });
});
