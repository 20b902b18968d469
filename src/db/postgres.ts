import pg from 'pg';
import type { Database, Queryable, QueryOptions, Transaction, TransactionOptions } from './database.js';
import { DatabaseUnavailableError, isConnectionError } from './database.js';

export interface PostgresOptions {
  connectionString: string;
  max?: number;
  /** Sets search_path on every connection (tests give each app its own schema). */
  schema?: string;
  connectionTimeoutMillis?: number;
  /**
   * Named prepared statements for the hot statements (default true). PgBouncer in
   * transaction pooling mode before 1.21 hands each transaction another server connection,
   * where a statement prepared on the first does not exist: turn them off there.
   */
  preparedStatements?: boolean;
}

function translate(err: unknown): never {
  throw isConnectionError(err) ? new DatabaseUnavailableError(err) : err;
}

export function openPostgres(opts: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 20,
    // Fail fast when the database is down, so requests get a 503 instead of hanging.
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 2000,
    idleTimeoutMillis: 30_000,
    ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
  });
  const prepared = opts.preparedStatements ?? true;
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});

  const queryOn =
    (c: pg.Pool | pg.PoolClient): Queryable['query'] =>
    async <R>(sql: string, params?: readonly unknown[], qo?: QueryOptions) => {
      try {
        const values = params as unknown[] | undefined;
        const res =
          qo?.name && prepared
            ? await c.query({ name: qo.name, text: sql, ...(values ? { values } : {}) })
            : await c.query(sql, values);
        return res.rows as R[];
      } catch (err) {
        return translate(err);
      }
    };

  return {
    kind: 'postgres',
    query: queryOn(pool),
    async transaction<T>(fn: (tx: Transaction) => Promise<T>, to?: TransactionOptions): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        return translate(err);
      }
      const tx: Transaction = {
        query: queryOn(client),
        async exec(sql) {
          await client.query(sql).catch(translate);
        },
      };
      let broken = false;
      // A checked-out client whose connection drops between statements emits 'error'; the
      // pool only listens on idle clients, so without this the process crashed (found by
      // the fault suite). The next statement then fails and the request answers 503.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN').catch(translate);
        const result = await fn(tx);
        if (to?.onCommitLsn) {
          const res = (await client
            .query('COMMIT; SELECT pg_current_wal_insert_lsn()::text AS lsn')
            .catch(translate)) as unknown as pg.QueryResult<{ lsn: string }>[];
          const lsn = res[1]?.rows[0]?.lsn;
          if (lsn) to.onCommitLsn(lsn);
        } else {
          await client.query('COMMIT').catch(translate);
        }
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken || undefined);
      }
    },
    // Idempotent like the PGlite adapter: pg throws when end() is called twice, and
    // shutdown paths (signal after an error) can reach close() more than once.
    async close() {
      if (!pool.ended) await pool.end();
    },
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}
