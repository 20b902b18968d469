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
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { leasePglite, seedPgliteDir } from './pglite-snapshot.js';
import { capturedLogs } from './secrets.js';

/**
 * Builds a real app on a real database for one test file.
 * Backend: TEST_BACKEND=postgres (with TEST_DATABASE_URL) gives the app its own fresh
 * PostgreSQL schema, dropped when the last app on it closes; otherwise an in-memory PGlite.
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

/**
 * The test apps open on each schema createTestApp made: the app that made it, and every app
 * built on it since (`schema: t.schema`). The schema is dropped when the last of them closes,
 * whichever that is. Dropped when its maker closed, it went from under the others while they
 * still ran queries: their requests, their background rounds (webhook polls and fan-out) and
 * what they write when they close (the rate-limit summary rows). Those failed on the missing
 * tables, or DROP SCHEMA ... CASCADE, locking the tables one after another while a statement
 * of theirs held one and waited for another, was chosen as a deadlock's victim (40P01).
 */
const appsOnSchema = new Map<string, number>();

/** One more app on `schema`, when it is a schema createTestApp made and has not dropped. */
function holdSchema(schema: string | undefined, made: boolean): string | undefined {
  if (schema === undefined || !(made || appsOnSchema.has(schema))) return undefined;
  appsOnSchema.set(schema, (appsOnSchema.get(schema) ?? 0) + 1);
  return schema;
}

/** One app fewer on `schema`: the last one drops it. */
async function releaseSchema(schema: string): Promise<void> {
  const left = (appsOnSchema.get(schema) ?? 1) - 1;
  if (left > 0) {
    appsOnSchema.set(schema, left);
    return;
  }
  appsOnSchema.delete(schema);
  await dropSchema(schema);
}

export interface TestAppOptions {
  /** Extra environment for loadConfig (e.g. MAX_VALUE_BYTES, JWT_ISSUER). */
  env?: Record<string, string>;
  /**
   * Reuse a PostgreSQL schema (a second app over the same data). Another test app's schema
   * stays until this app has closed too, whichever closes first.
   */
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
  const schema = backend === 'postgres' ? (opts.schema ?? (await newSchema())) : undefined;
  // Dropped after the last app on it closes (see appsOnSchema); a schema the caller made is theirs.
  const held = holdSchema(schema, backend === 'postgres' && !opts.schema);
  const inMemory = backend === 'pglite' && !opts.dataDir;
  let runtime: Runtime | undefined;
  let app: FastifyInstance | undefined;
  try {
    if (opts.dataDir && !config.databaseUrl) await seedPgliteDir(opts.dataDir, inject('pgliteSnapshot'));
    runtime = await openRuntime(config, logger, {
      ...(schema ? { pgSchema: schema } : {}),
      inMemory,
      ...(inMemory ? { pgliteLease: opts.pgliteLease ?? (await leasePglite(inject('pgliteSnapshot'))) } : {}),
    });
    app = await buildApp({ ...runtime, logger });
    await app.ready();
  } catch (err) {
    // What did open is closed before the schema can go: the build's own error is the one to see.
    await app?.close().catch(() => {});
    await runtime?.close().catch(() => {});
    if (held) await releaseSchema(held).catch(() => {});
    throw err;
  }
  let closing: Promise<void> | undefined;
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
    close() {
      // Once: a second close must not count this app off its schema again.
      closing ??= (async () => {
        await app.close();
        await runtime.close();
        if (held) await releaseSchema(held);
      })();
      return closing;
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
