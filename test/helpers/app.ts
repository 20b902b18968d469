import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { mintAdminToken } from '../../src/auth/mint.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { Keyring } from '../../src/crypto/keyring.js';
import type { Database } from '../../src/db/database.js';
import type { PgliteLease } from '../../src/db/pglite.js';
import { createLogger } from '../../src/logger.js';
import { openRuntime } from '../../src/runtime.js';
import { leasePglite, seedPgliteDir } from './pglite-snapshot.js';
import { capturedLogs } from './secrets.js';

/**
 * Builds a real app on a real database for one test file.
 * Backend: TEST_BACKEND=postgres (with TEST_DATABASE_URL) gives the app its own fresh
 * PostgreSQL schema, dropped on close; otherwise an in-memory PGlite.
 * Every log line goes to capturedLogs, which test/setup.ts scans for secret values.
 */
export const backend: 'postgres' | 'pglite' = process.env.TEST_BACKEND === 'postgres' ? 'postgres' : 'pglite';
export const testDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestApp {
  app: FastifyInstance;
  db: Database;
  config: Config;
  keyring: Keyring;
  jwtSecret: string;
  /** The env the app was built from (to build a second app on the same data). */
  env: Record<string, string>;
  schema: string | undefined;
  /** An admin token (role project_admin) for `sub`. */
  token(sub?: string, opts?: { ttlSeconds?: number; role?: string; extra?: Record<string, unknown> }): string;
  /** Authorization header object for an admin. */
  auth(sub?: string): { authorization: string };
  /** Empties every data table (keeps the schema, the key canaries and the default environment). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

const logSink = () =>
  new Writable({
    write(chunk, _enc, cb) {
      capturedLogs.push(chunk.toString());
      cb();
    },
  });

export async function newSchema(): Promise<string> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: testDatabaseUrl });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  await c.end();
  return schema;
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: testDatabaseUrl });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
}

export interface TestAppOptions {
  /** Extra environment for loadConfig (e.g. MAX_VALUE_BYTES, JWT_ISSUER). */
  env?: Record<string, string>;
  /** Reuse a PostgreSQL schema (a second app over the same data). */
  schema?: string;
  /** PGlite: a directory instead of memory (persistence tests), seeded from the snapshot. */
  dataDir?: string;
  /** PGlite in memory: this database instead of one from the pool (apps over the same data). */
  pgliteLease?: PgliteLease;
}

export async function createTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'trace',
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: randomBytes(48).toString('base64'),
    ...(backend === 'postgres' ? { DATABASE_URL: testDatabaseUrl } : {}),
    ...(opts.dataDir ? { DATA_DIR: opts.dataDir } : {}),
    // A test file drives one app from one IP with one identity, far faster than any client:
    // the rate limits have their own tests (test/api/rate-limits.test.ts), which set them explicitly.
    READ_RATE_LIMIT: '1000000',
    AUTH_FAILURE_RATE_LIMIT: '1000000',
    BATCH_ENTRY_RATE_LIMIT: '1000000',
    REFUSAL_RATE_LIMIT: '1000000',
    ...opts.env,
  };
  const config = loadConfig(env);
  const logger = createLogger('trace', logSink());
  const createdSchema = backend === 'postgres' && !opts.schema;
  const schema = backend === 'postgres' ? (opts.schema ?? (await newSchema())) : undefined;
  const inMemory = backend === 'pglite' && !opts.dataDir;
  if (opts.dataDir && !config.databaseUrl) await seedPgliteDir(opts.dataDir, inject('pgliteSnapshot'));
  const runtime = await openRuntime(config, logger, {
    ...(schema ? { pgSchema: schema } : {}),
    inMemory,
    ...(inMemory ? { pgliteLease: opts.pgliteLease ?? (await leasePglite(inject('pgliteSnapshot'))) } : {}),
  });
  const app = await buildApp({ ...runtime, logger });
  await app.ready();
  const token: TestApp['token'] = (sub = 'test-admin', o = {}) =>
    mintAdminToken(config, runtime.jwtSecret, {
      sub,
      ttlSeconds: o.ttlSeconds ?? 3600,
      ...(o.role ? { role: o.role } : {}),
      ...(o.extra ? { extra: o.extra } : {}),
    });
  return {
    app,
    db: runtime.db,
    config,
    keyring: runtime.keyring,
    jwtSecret: runtime.jwtSecret,
    env,
    schema,
    token,
    auth: (sub) => ({ authorization: `Bearer ${token(sub)}` }),
    async reset() {
      const tables = await runtime.db.query<{ tablename: string }>(
        `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
         AND tablename NOT IN ('schema_migrations', 'crypto_canaries')`,
      );
      if (tables.length === 0) return;
      // TRUNCATE locks every table at once while the app's background audit sealer and
      // batch writer may hold some of them: PostgreSQL then breaks the cycle by failing one
      // side with a deadlock (40P01). The background side retries on its next round; so does this.
      for (let attempt = 1; ; attempt++) {
        try {
          await runtime.db.query(`TRUNCATE ${tables.map((t) => t.tablename).join(', ')} CASCADE`);
          // The one row a migration seeds that the service relies on: default always exists.
          await runtime.db.query(`INSERT INTO environments (name, description) VALUES ('default', NULL)`);
          return;
        } catch (err) {
          if ((err as { code?: unknown }).code !== '40P01' || attempt >= 5) throw err;
        }
      }
    },
    async close() {
      await app.close();
      await runtime.close();
      if (createdSchema && schema) await dropSchema(schema);
    },
  };
}

export interface UseOptions {
  /** Empty every data table before each test (TestApp.reset), so tests cannot see each other's rows. */
  resetEachTest?: boolean;
}

/**
 * The per-file fixture every test file uses: builds one app before the file's tests
 * (beforeAll), closes it after them (afterAll) and, with resetEachTest, empties it before
 * each test. Returns a handle usable at module level; its fields are the app's once
 * beforeAll has run (reading one earlier throws, saying so).
 */
export function useFixture<T extends TestApp>(build: () => Promise<T>, use: UseOptions = {}): T {
  let current: T | undefined;
  beforeAll(async () => {
    current = await build();
  });
  afterAll(async () => current?.close());
  if (use.resetEachTest) beforeEach(async () => current?.reset());
  return new Proxy({} as T, {
    get(_, prop) {
      if (!current) throw new Error(`test app used before beforeAll built it (reading ${String(prop)})`);
      return current[prop as keyof T];
    },
  });
}

/** One app on the file's backend for the whole file (see useFixture). */
export function useTestApp(opts: TestAppOptions & UseOptions = {}): TestApp {
  const { resetEachTest, ...appOpts } = opts;
  return useFixture(() => createTestApp(appOpts), { resetEachTest });
}
