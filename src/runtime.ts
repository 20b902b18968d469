import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { type Config, ConfigError } from './config.js';
import { type Keyring, parseKeyring } from './crypto/keyring.js';
import { lockDataDir } from './db/data-dir-lock.js';
import type { Database } from './db/database.js';
import { DatabaseUrlError } from './db/hosts.js';
import { loadMigrations, migrate } from './db/migrate.js';
import { openPglite, type PgliteLease } from './db/pglite.js';
// One level below the repository root from src (tsx) and dist (compiled) alike.
import { copyPgliteImage, findPgliteImage } from './db/pglite-image.mjs';
import { openPostgres } from './db/postgres.js';
import { ReadRouting, replicaName } from './db/read-replicas.js';
import { waitForDatabase } from './db/wait.js';
import { memoryFences, sharedFences } from './db/write-fences.js';
import { checkKeyring } from './kek/key-check.js';

/**
 * Everything the app needs that touches the outside world: the database (opened and
 * migrated), the keyring (checked against the stored canaries) and the JWT secret.
 */
export interface Runtime {
  config: Config;
  db: Database;
  keyring: Keyring;
  jwtSecret: string;
  migrationCount: number;
  /** Shared rate-limit counters, when REDIS_URL is set. */
  redis: Redis | undefined;
  /** Where value reads and lists go: the primary, or a fresh enough replica (DATABASE_READ_URL). */
  reads: ReadRouting;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** PostgreSQL only: use this schema (tests give each app its own). */
  pgSchema?: string;
  /** PGlite only: keep the database in memory instead of DATA_DIR. */
  inMemory?: boolean;
  /** PGlite in memory only: start from this dumped data directory (tests: a migrated snapshot). */
  pgliteSnapshot?: Blob;
  /** PGlite in memory only: use this lent, already open instance (tests: a pooled one). */
  pgliteLease?: PgliteLease;
  /** PGlite in DATA_DIR: what this process is, named to a second opener it refuses. */
  role?: string;
  /** PostgreSQL with several hosts: where the host changes are logged. */
  log?: Logger;
}

/** Reads an owner-only file from DATA_DIR, creating it with `make()` the first time. */
async function ensureLocalSecret(
  dir: string,
  name: string,
  make: () => string,
  log: Logger,
): Promise<string> {
  const file = join(dir, name);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const value = make();
  try {
    await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    log.warn({ file }, `generated ${name} for local use; set it explicitly (and back it up) for production`);
    return value;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(file, 'utf8')).trim();
    throw err;
  }
}

export async function resolveKeys(
  config: Config,
  log: Logger,
): Promise<{ keyring: Keyring; jwtSecret: string }> {
  const { encryption, jwt } = config;
  const haveKey = encryption.key !== undefined || encryption.keys !== undefined;
  const haveJwt = jwt.secret !== undefined || jwt.publicKey !== undefined;
  if (config.nodeEnv === 'production' && (!haveKey || !haveJwt)) {
    throw new ConfigError([
      ...(haveKey
        ? []
        : ['ENCRYPTION_KEY is required in production (generate one with: openssl rand -base64 32)']),
      ...(haveJwt
        ? []
        : ['JWT_SECRET is required in production (generate one with: openssl rand -base64 48)']),
    ]);
  }
  const keysDir = join(resolve(config.dataDir), 'keys');
  const key = haveKey
    ? encryption.key
    : await ensureLocalSecret(keysDir, 'encryption.key', () => randomBytes(32).toString('base64'), log);
  const jwtSecret =
    jwt.secret ??
    (haveJwt
      ? ''
      : await ensureLocalSecret(keysDir, 'jwt.secret', () => randomBytes(48).toString('base64'), log));
  let keyring: Keyring;
  try {
    keyring = parseKeyring({ key, keys: encryption.keys, activeKid: encryption.activeKid });
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  return { keyring, jwtSecret };
}

/**
 * One warning per pool when named prepared statements turn out not to survive the pooling
 * between us and PostgreSQL (PgBouncer before 1.21 in transaction mode): the pool has already
 * switched to unnamed statements, and the setting that makes it so from the start is named.
 */
function preparedStatementsOff(log: Logger, pool: string) {
  return ({ code }: { code: string }) =>
    log.warn(
      { pool, sqlstate: code },
      'named prepared statements do not survive this database connection (a transaction-pooling PgBouncer before 1.21?): switched to unnamed statements; set DATABASE_PREPARED_STATEMENTS=false to start that way, or max_prepared_statements in PgBouncer 1.21 or later',
    );
}

export async function openDatabase(config: Config, opts: RuntimeOptions = {}): Promise<Database> {
  if (config.databaseUrl) {
    const log = opts.log;
    try {
      return openPostgres({
        connectionString: config.databaseUrl,
        max: config.databasePoolMax,
        // A full pool is load, not an outage: wait for a connection as long as a request may take.
        poolWaitMillis: config.requestTimeoutMs,
        preparedStatements: config.databasePreparedStatements,
        ...(opts.pgSchema ? { schema: opts.pgSchema } : {}),
        ...(log
          ? {
              onPreparedStatementsOff: preparedStatementsOff(log, 'primary'),
              onHostChange: ({ host, reason }) =>
                host
                  ? log.info({ host, reason }, 'database host chosen')
                  : log.warn({ reason }, 'database host lost'),
            }
          : {}),
      });
    } catch (err) {
      if (err instanceof DatabaseUrlError) throw new ConfigError([err.message]);
      throw err;
    }
  }
  if (opts.inMemory)
    return openPglite(undefined, {
      ...(opts.pgliteSnapshot ? { loadDataDir: opts.pgliteSnapshot } : {}),
      ...(opts.pgliteLease ? { lease: opts.pgliteLease } : {}),
    });
  const dir = join(resolve(config.dataDir), 'pglite');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Exclusive: a second process on the same files would lose acknowledged writes.
  const lock = await lockDataDir(config.dataDir, opts.role ?? 'process', (err) => {
    process.stderr.write(
      `fatal: the DATA_DIR lock was lost (${err.message}); stopping to protect the data\n`,
    );
    process.exit(75);
  });
  let db: Database;
  try {
    db = await openEmbedded(dir, [`shared_buffers = ${config.pgliteSharedBuffers}`], opts.log);
  } catch (err) {
    await lock.release();
    throw err;
  }
  return {
    ...db,
    async close() {
      try {
        await db.close();
      } finally {
        await lock.release();
      }
    },
  };
}

/**
 * The image's rows that carry its build time where this database's first start belongs: the
 * default environment's created_at (migrations/007, `now()` when the image was made, maybe
 * weeks before). Stamped when a copy first opens. An image made before 007 has no such row
 * (the migrator makes it at this start, with this start's time). schema_migrations keeps the
 * image's applied_at: when each migration really ran.
 */
const STAMP_FIRST_START = `DO $$ BEGIN
  IF to_regclass('environments') IS NOT NULL THEN
    UPDATE environments SET created_at = now(), updated_at = now() WHERE name = 'default';
  END IF;
END $$`;

/** True when `dir` holds no PGlite database yet (initdb has never run there). */
const isEmptyPgliteDir = (dir: string) => !existsSync(join(dir, 'PG_VERSION'));

/**
 * Opens DATA_DIR's PGlite. An empty directory starts as a copy of the install-time image (see
 * src/db/pglite-image.mjs), already migrated, rather than PGlite's own initdb and every
 * migration: a first start then costs a later start plus the copy, and the process does not
 * keep initdb's memory. The migrator then runs as on any database and finds nothing to do,
 * or what the image lacks. The copy is made beside the directory and renamed onto it, so an
 * interrupted one leaves the directory empty; one that fails or does not open (a damaged
 * image) is set aside with a warning and initdb runs as it did without an image.
 */
async function openEmbedded(
  dir: string,
  postgresqlconf: string[],
  log: Logger | undefined,
): Promise<Database> {
  if (!isEmptyPgliteDir(dir)) return openPglite(dir, { postgresqlconf });
  const found = await findPgliteImage(await loadMigrations()).catch(() => undefined);
  log?.info(
    { dataDir: dir, image: found?.dir ?? null, imageMigrations: found?.migrations ?? null },
    found
      ? 'creating the embedded database from the install-time image...'
      : 'creating the embedded database (initdb, no install-time image; this takes a while once)...',
  );
  if (!found) return openPglite(dir, { postgresqlconf });
  const copy = `${dir}.new`;
  try {
    await rm(copy, { recursive: true, force: true });
    await copyPgliteImage(found.dir, copy);
    await rename(copy, dir);
    const db = await openPglite(dir, { postgresqlconf });
    try {
      await db.query(STAMP_FIRST_START);
    } catch (err) {
      await db.close();
      throw err;
    }
    return db;
  } catch (err) {
    log?.warn(
      { image: found.dir, errName: (err as Error).name, reason: (err as Error).message },
      'the install-time database image did not load; running initdb instead',
    );
    await rm(copy, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return openPglite(dir, { postgresqlconf });
  }
}

/**
 * ioredis's defaults queue and retry a command for a long time; a rate-limit check must
 * answer fast (the limiter skips the check when Redis fails, see src/app.ts), so commands
 * fail at once while disconnected (no offline queue) and reconnection goes on in the
 * background. Start-up waits briefly for the first connection so the first requests count.
 */
async function openRedis(url: string, log: Logger): Promise<Redis> {
  const redis = new Redis(url, {
    connectTimeout: 1000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
  });
  redis.on('error', (err: Error & { code?: string }) => log.warn({ errCode: err.code }, 'redis error'));
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ready) log.warn('redis is not reachable yet: rate limits are not enforced until it is');
  return redis;
}

/**
 * One pool per replica host, with the lag poller (not started). The fences that give
 * read-your-own-writes live in Redis when REDIS_URL is set (every instance sees them),
 * in memory otherwise; they outlive the lag bound by a margin (see src/db/write-fences.ts).
 */
function openReadRouting(
  config: Config,
  primary: Database,
  redis: Redis | undefined,
  log: Logger,
  opts: RuntimeOptions,
): ReadRouting {
  const ttlMs = 2 * config.databaseReadMaxLagMs + 1000;
  const fences = redis
    ? sharedFences(redis, `${config.rateLimitNamespace}fence:`, ttlMs, (err) =>
        log.warn(
          { errName: (err as Error)?.name },
          'redis: a read-your-writes fence was not shared; other instances may serve this caller replica data up to the lag bound old',
        ),
      )
    : memoryFences(ttlMs);
  const replicas = config.databaseReadUrls.map((url) => ({
    name: replicaName(url),
    db: openPostgres({
      connectionString: url,
      max: config.databasePoolMax,
      preparedStatements: config.databasePreparedStatements,
      onPreparedStatementsOff: preparedStatementsOff(log, replicaName(url)),
      // A replica that cannot be reached is skipped quickly: the primary serves.
      connectionTimeoutMillis: 1000,
      // ...and one that stops answering: a point read or a list page takes milliseconds.
      queryTimeoutMillis: 2000,
      ...(opts.pgSchema ? { schema: opts.pgSchema } : {}),
    }),
  }));
  return new ReadRouting({ primary, replicas, maxLagMs: config.databaseReadMaxLagMs, fences, log });
}

export async function openRuntime(config: Config, log: Logger, opts: RuntimeOptions = {}): Promise<Runtime> {
  const { keyring, jwtSecret } = await resolveKeys(config, log);
  const db = await openDatabase(config, { log, ...opts });
  try {
    if (config.databaseUrl)
      await waitForDatabase(db, { url: config.databaseUrl, timeoutMs: config.databaseConnectTimeoutMs, log });
    const migrations = await loadMigrations();
    const started = performance.now();
    const { applied } = await migrate(db, migrations, (pending) =>
      log.info(
        { pending: pending.length, from: pending[0], to: pending.at(-1) },
        `applying ${pending.length} database migration${pending.length === 1 ? '' : 's'}...`,
      ),
    );
    if (applied.length > 0)
      log.info({ applied, ms: Math.round(performance.now() - started) }, 'migrations applied');
    await checkKeyring(db, keyring);
    const redis = config.redisUrl ? await openRedis(config.redisUrl, log) : undefined;
    const reads = openReadRouting(config, db, redis, log, opts);
    await reads.start();
    return {
      config,
      db,
      keyring,
      jwtSecret,
      migrationCount: migrations.length,
      redis,
      reads,
      async close() {
        await reads.stop();
        redis?.disconnect();
        await db.close();
      },
    };
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
}
