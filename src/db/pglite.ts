import { PGlite } from '@electric-sql/pglite';
import { AdmissionGate, type WorkClass } from './admission.js';
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
 * back while a transaction runs, so the same SQL keeps the same isolation guarantees. Our
 * statements and transactions reach it one at a time through an AdmissionGate
 * (src/db/admission.ts), which lets the background handle's (webhook delivery) go before
 * queued requests'.
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
  const gate = new AdmissionGate();
  const run = async <T>(cls: WorkClass, fn: () => Promise<T>): Promise<T> => {
    if (closed()) translate(new Error('PGlite is closed'));
    return gate.run(cls, async () => {
      // Closed (or lent back) while this waited for its turn.
      if (closed()) translate(new Error('PGlite is closed'));
      return fn();
    });
  };
  const close = async () => {
    if (lease) {
      if (!released) lease.release();
      released = true;
    } else if (!db.closed) await db.close();
  };
  const handle = (cls: WorkClass): Database => ({
    kind: 'pglite',
    query<R>(sql: string, params?: readonly unknown[]) {
      return run(cls, async () => {
        const res = await db
          .query<Record<string, unknown>>(sql, params as unknown[] | undefined)
          .catch(translate);
        return normalise<R>(res.rows);
      });
    },
    transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      return run(cls, () =>
        db.transaction(async (t) =>
          fn({
            async query<R>(sql: string, params?: readonly unknown[]) {
              const res = await t.query<Record<string, unknown>>(sql, params as unknown[] | undefined);
              return normalise<R>(res.rows);
            },
            async exec(sql) {
              await t.exec(sql);
            },
          }),
        ),
      );
    },
    // The background handle closes nothing: the database is closed by its owner.
    close: cls === 'foreground' ? close : async () => {},
    stats: () => {
      const { running, waiting } = gate.load;
      return { total: 1, idle: running ? 0 : 1, waiting };
    },
    background: () => background,
  });
  const background = handle('background');
  return handle('foreground');
}
