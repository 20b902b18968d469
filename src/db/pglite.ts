import { PGlite } from '@electric-sql/pglite';
import { type Database, DatabaseUnavailableError, isConnectionError, type Transaction } from './database.js';

function translate(err: unknown): never {
  throw isConnectionError(err) ? new DatabaseUnavailableError(err) : err;
}

/** PGlite returns bytea as Uint8Array; the repositories expect Buffers, as pg gives them. */
function normalise<R>(rows: Record<string, unknown>[]): R[] {
  for (const row of rows) {
    for (const k in row) {
      const v = row[k];
      if (v instanceof Uint8Array && !Buffer.isBuffer(v))
        row[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  }
  return rows as R[];
}

/**
 * An open in-memory PGlite lent to one Database (tests: a per-worker pool that empties and
 * re-migrates it between apps, far cheaper than starting another). Closing the Database
 * calls `release` instead of closing the instance; the Database then answers as closed.
 */
export interface PgliteLease {
  instance: PGlite;
  release(): void;
}

/**
 * Statement names (QueryOptions.name) are ignored: PGlite runs in this process, so there is
 * no network round trip or parse cost worth a prepared statement cache.
 *
 * Embedded PostgreSQL (WebAssembly), persisted in dataDir, or in memory when dataDir is
 * undefined; `loadDataDir` starts it from a dumped data directory (a tarball from
 * PGlite's dumpDataDir) instead of running initdb, which the tests use to skip the
 * seconds initdb and the migrations take on every in-memory app. It is single-connection: PGlite queues statements and holds other callers
 * back while a transaction runs, so the same SQL keeps the same isolation guarantees.
 */
export async function openPglite(
  dataDir: string | undefined,
  opts: { loadDataDir?: Blob; lease?: PgliteLease; postgresqlconf?: string[] } = {},
): Promise<Database> {
  const { lease, ...pgliteOpts } = opts;
  const db = lease?.instance ?? new PGlite({ ...(dataDir === undefined ? {} : { dataDir }), ...pgliteOpts });
  await db.waitReady;
  let released = false;
  const closed = () => released || db.closed;
  return {
    kind: 'pglite',
    async query<R>(sql: string, params?: readonly unknown[]) {
      if (closed()) translate(new Error('PGlite is closed'));
      const res = await db
        .query<Record<string, unknown>>(sql, params as unknown[] | undefined)
        .catch(translate);
      return normalise<R>(res.rows);
    },
    async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      if (closed()) translate(new Error('PGlite is closed'));
      return db.transaction(async (t) =>
        fn({
          async query<R>(sql: string, params?: readonly unknown[]) {
            const res = await t.query<Record<string, unknown>>(sql, params as unknown[] | undefined);
            return normalise<R>(res.rows);
          },
          async exec(sql) {
            await t.exec(sql);
          },
        }),
      );
    },
    async close() {
      if (lease) {
        if (!released) lease.release();
        released = true;
      } else if (!db.closed) await db.close();
    },
    stats: () => ({ total: 1, idle: 1, waiting: 0 }),
  };
}
