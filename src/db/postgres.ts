import pg from 'pg';
import type { Database, Queryable, QueryOptions, Transaction, TransactionOptions } from './database.js';
import { DatabaseUnavailableError, isConnectionError } from './database.js';
import { acceptable, type HostList, type HostState, parseDatabaseUrl } from './hosts.js';

export interface PostgresOptions {
  /** One host, or several (libpq multi-host syntax with target_session_attrs: src/db/hosts.ts). */
  connectionString: string;
  max?: number;
  /** Sets search_path on every connection (tests give each app its own schema). */
  schema?: string;
  /** How long establishing one new connection may take before it counts as unreachable (2 s). */
  connectionTimeoutMillis?: number;
  /**
   * How long a statement may wait for a connection while every connection of the pool is in
   * use (default: connectionTimeoutMillis). A full pool is load, not an outage: the primary
   * waits as long as a request may take (REQUEST_TIMEOUT_MS), see openPostgres.
   */
  poolWaitMillis?: number;
  /**
   * Client-side limit on one statement's answer (pg's query_timeout): the statement fails
   * and its connection is dropped. Set for replica pools, so a replica that accepts
   * connections but stops answering costs a read this long before the primary answers it.
   */
  queryTimeoutMillis?: number;
  /**
   * Named prepared statements for the hot statements (default true). PgBouncer in
   * transaction pooling mode before 1.21 hands each transaction another server connection,
   * where a statement prepared on the first does not exist: turn them off there. Left on
   * behind such a pooler, the first statement that meets the mismatch switches this pool to
   * unnamed statements for good (and re-runs what failed), and onPreparedStatementsOff says so.
   */
  preparedStatements?: boolean;
  /** Named statements were found not to survive this connection's pooling and were turned off. */
  onPreparedStatementsOff?: (event: { code: string; message: string }) => void;
  /** Multi-host: told which host the connections go to, and why they moved (never a password). */
  onHostChange?: (event: { host: string | undefined; reason: string }) => void;
}

/**
 * SQLSTATE 26000 (prepared statement "x" does not exist) and 42P05 (prepared statement "x"
 * already exists) on a named statement: the server connection is not the one pg prepared it
 * on, which is what a transaction-pooling PgBouncer before 1.21 does. Either way the statement
 * did not run (Parse or Bind failed), so it is safe to send it again unnamed.
 */
const PREPARED_MISMATCH = new Set(['26000', '42P05']);

/** SQLSTATE 25006: a write reached a read-only session (a standby, or a demoted primary). */
const READ_ONLY_SQL_TRANSACTION = '25006';

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A write on a read-only host means the host we hold is no longer (or not yet) the primary:
 * for the caller that is the database being unavailable (503 with Retry-After), not a bug.
 */
function unavailable(err: unknown): boolean {
  return isConnectionError(err) || codeOf(err) === READ_ONLY_SQL_TRANSACTION;
}

function translate(err: unknown): never {
  throw unavailable(err) ? new DatabaseUnavailableError(err) : err;
}

/** Where the queries go: one fixed pool, or the pool of the host chosen among several. */
interface PoolSource {
  get(): Promise<pg.Pool>;
  /** A statement on `pool` failed with `err`: a multi-host source may move to another host. */
  failed(pool: pg.Pool, err: unknown): void;
  current(): pg.Pool | undefined;
  end(): Promise<void>;
}

function fixedSource(pool: pg.Pool): PoolSource {
  return {
    get: async () => pool,
    failed() {},
    current: () => pool,
    async end() {
      if (!pool.ended) await pool.end();
    },
  };
}

class NoSuitableHostError extends Error {
  override name = 'NoSuitableHostError';
  /** SQLSTATE 08001 (unable to establish a connection), as libpq reports it: a 503 for callers. */
  readonly code = '08001';
  constructor(attrs: string, tried: string[]) {
    super(`no host is ${attrs} (${tried.join('; ')})`);
  }
}

/**
 * libpq's behaviour for a host list: try the hosts in order, keep the first whose state
 * matches target_session_attrs, and hold one pg.Pool on it. A connection error or a
 * read-only refusal (25006) from that host drops the pool (the request in flight answers
 * 503); the next query resolves the host list again, so after a standby is promoted the
 * service finds the new primary by itself. One resolution at a time; a failed one is
 * remembered for RETRY_MS so an outage does not turn every request into a probe of every host.
 */
function multiHostSource(
  list: HostList,
  poolFor: (url: string, onConnect?: (c: pg.ClientBase) => Promise<void>) => pg.Pool,
  timeoutMs: number,
  onHostChange: PostgresOptions['onHostChange'],
): PoolSource {
  const RETRY_MS = 250;
  let current: { pool: pg.Pool; host: string } | undefined;
  let resolving: Promise<pg.Pool> | undefined;
  let lastFailure: { at: number; err: unknown } | undefined;
  let ended = false;

  async function stateOf(c: pg.ClientBase): Promise<HostState> {
    const { rows } = await c.query<{ recovery: boolean; ro: string }>(
      `SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS ro`,
    );
    return { inRecovery: rows[0]?.recovery === true, readOnly: rows[0]?.ro === 'on' };
  }

  async function probe(url: string): Promise<HostState> {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
    c.on('error', () => {});
    await c.connect();
    try {
      return await stateOf(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * Every new connection of the chosen pool is checked again, as libpq checks each
   * connection: a host demoted and restarted between two connections (the pool had none
   * open to notice) is refused instead of serving reads as a standby. pg-pool's onConnect
   * hook runs before the connection is handed out; its rejection fails that checkout (503)
   * and, through failed(), drops the pool.
   */
  const recheck = async (c: pg.ClientBase) => {
    const state = await stateOf(c);
    // prefer-standby: any host is acceptable once chosen (its second pass).
    if (!acceptable(list.targetSessionAttrs, state, 'second')) {
      throw new NoSuitableHostError(list.targetSessionAttrs, ['the chosen host changed role']);
    }
  };

  async function resolve(): Promise<pg.Pool> {
    const tried: string[] = [];
    const passes =
      list.targetSessionAttrs === 'prefer-standby' ? (['first', 'second'] as const) : (['first'] as const);
    for (const pass of passes) {
      for (const h of list.hosts) {
        const name = `${h.host}:${h.port}`;
        let state: HostState;
        try {
          state = await probe(h.url);
        } catch (err) {
          tried.push(`${name} ${codeOf(err) ?? 'unreachable'}`);
          continue;
        }
        if (!acceptable(list.targetSessionAttrs, state, pass)) {
          tried.push(`${name} ${state.inRecovery ? 'standby' : state.readOnly ? 'read-only' : 'primary'}`);
          continue;
        }
        const pool = poolFor(h.url, recheck);
        // An idle connection dropping (the host restarted or went away) also means looking again.
        pool.on('error', (err) => source.failed(pool, err));
        if (ended) {
          await pool.end();
          throw new Error('Cannot use a pool after calling end');
        }
        current = { pool, host: name };
        onHostChange?.({ host: name, reason: `${list.targetSessionAttrs} session on ${name}` });
        return pool;
      }
    }
    throw new NoSuitableHostError(list.targetSessionAttrs, tried);
  }

  const source: PoolSource = {
    async get() {
      if (ended) throw new Error('Cannot use a pool after calling end');
      if (current) return current.pool;
      if (!resolving) {
        if (lastFailure && Date.now() - lastFailure.at < RETRY_MS) throw lastFailure.err;
        resolving = resolve()
          .catch((err) => {
            lastFailure = { at: Date.now(), err };
            throw err;
          })
          .finally(() => {
            resolving = undefined;
          });
      }
      return resolving;
    },
    failed(pool, err) {
      if (current?.pool !== pool || !unavailable(err)) return;
      const was = current.host;
      current = undefined;
      onHostChange?.({
        host: undefined,
        reason: `${was}: ${codeOf(err) ?? 'connection lost'}; looking again`,
      });
      // Clients still checked out finish (and fail) on their own; then the pool closes.
      pool.end().catch(() => {});
    },
    current: () => current?.pool,
    async end() {
      ended = true;
      const pool = current?.pool;
      current = undefined;
      if (pool && !pool.ended) await pool.end();
    },
  };
  return source;
}

export function openPostgres(opts: PostgresOptions): Database {
  const list = parseDatabaseUrl(opts.connectionString);
  const timeoutMs = opts.connectionTimeoutMillis ?? 2000;
  const waitMs = Math.max(opts.poolWaitMillis ?? timeoutMs, timeoutMs);
  /**
   * pg-pool applies its one connectionTimeoutMillis to two different waits: establishing a
   * new connection, and queueing for a busy one when the pool is full. Only the first says
   * anything about the database. Under load (2 cores, load average 20+) every connection of
   * a full pool was in use for over 2 s at a time, so requests admitted by the bulk gate, and
   * reads too, were answered 503 "the database cannot be reached" while the database was up
   * and answering, and no new connection had been tried. So the two are set apart: each new
   * connection still gets timeoutMs (this Client's own connect timeout: a database that is
   * down or unreachable answers 503 as fast as before), and a request queued behind busy
   * connections waits up to waitMs. A database that goes away while the pool is full fails
   * the busy statements, and the queue then meets the fast connect failure, not the wait.
   */
  class Client extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: timeoutMs });
    }
  }
  const poolFor = (connectionString: string, onConnect?: (c: pg.ClientBase) => Promise<void>) => {
    const pool = new pg.Pool({
      connectionString,
      ...(onConnect ? { onConnect } : {}),
      max: opts.max ?? 20,
      Client,
      // Queueing for a busy connection (new connections: Client above, timeoutMs).
      connectionTimeoutMillis: waitMs,
      ...(opts.queryTimeoutMillis ? { query_timeout: opts.queryTimeoutMillis } : {}),
      idleTimeoutMillis: 30_000,
      ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
    });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on('error', () => {});
    return pool;
  };
  const source = list.multi
    ? multiHostSource(list, poolFor, timeoutMs, opts.onHostChange)
    : fixedSource(poolFor(opts.connectionString));
  let prepared = opts.preparedStatements ?? true;
  /**
   * A named statement failed because the server connection does not hold what pg prepared:
   * from now on every statement of this pool goes unnamed (one notice, however many requests
   * were in flight). Detected and adapted to rather than refused at start-up, because no
   * statement can tell from inside whether a pooler sits between us and PostgreSQL.
   */
  const preparedMismatch = (err: unknown, sentNamed: boolean): boolean => {
    const code = codeOf(err);
    if (!sentNamed || !code || !PREPARED_MISMATCH.has(code)) return false;
    if (prepared) {
      prepared = false;
      opts.onPreparedStatementsOff?.({ code, message: (err as Error).message });
    }
    return true;
  };

  /** Thrown out of a transaction's statement whose named form did not survive pooling. */
  class PreparedMismatch extends Error {
    override name = 'PreparedMismatch';
    constructor(cause: unknown) {
      super('a named prepared statement was lost by the connection pooler; the transaction runs again', {
        cause,
      });
    }
  }

  const queryOn =
    (
      pick: () => Promise<pg.Pool | pg.PoolClient>,
      pool: () => pg.Pool | undefined,
      inTransaction?: { mismatch: boolean },
    ): Queryable['query'] =>
    async <R>(sql: string, params?: readonly unknown[], qo?: QueryOptions) => {
      let c: pg.Pool | pg.PoolClient | undefined;
      const values = params as unknown[] | undefined;
      const named = Boolean(qo?.name && prepared);
      try {
        c = await pick();
        const res = named
          ? await c.query({ name: qo?.name as string, text: sql, ...(values ? { values } : {}) })
          : await c.query(sql, values);
        return res.rows as R[];
      } catch (first) {
        let err = first;
        if (preparedMismatch(first, named)) {
          // Inside a transaction the failed statement aborted it: the transaction is rolled
          // back and run again as a whole (below). Outside one, nothing ran: send it unnamed.
          if (inTransaction) {
            inTransaction.mismatch = true;
            throw new PreparedMismatch(first);
          }
          try {
            return (await (c as pg.Pool).query(sql, values)).rows as R[];
          } catch (again) {
            err = again;
          }
        }
        const p = pool() ?? (c instanceof pg.Pool ? c : undefined);
        if (p) source.failed(p, err);
        return translate(err);
      }
    };

  const db: Database = {
    kind: 'postgres',
    query: queryOn(
      () => source.get(),
      () => undefined,
    ),
    async transaction<T>(fn: (tx: Transaction) => Promise<T>, to?: TransactionOptions): Promise<T> {
      const seen = { mismatch: false };
      try {
        return await runTransaction(fn, to, seen);
      } catch (err) {
        // A named statement inside it met a pooler that lost it: everything the transaction
        // did was rolled back, and statements are unnamed now, so it runs once more. The flag
        // (not the error) decides, since fn may have wrapped the error in one of its own.
        if (!seen.mismatch) throw err;
        return runTransaction(fn, to, { mismatch: false });
      }
    },
    // Idempotent like the PGlite adapter: pg throws when end() is called twice, and
    // shutdown paths (signal after an error) can reach close() more than once.
    async close() {
      await source.end();
    },
    stats: () => {
      const pool = source.current();
      return pool
        ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
        : { total: 0, idle: 0, waiting: 0 };
    },
    background: () => db,
  };
  return db;

  async function runTransaction<T>(
    fn: (tx: Transaction) => Promise<T>,
    to: TransactionOptions | undefined,
    seen: { mismatch: boolean },
  ): Promise<T> {
    let client: pg.PoolClient;
    let pool: pg.Pool | undefined;
    const fail = (err: unknown): never => {
      if (pool) source.failed(pool, err);
      return translate(err);
    };
    try {
      pool = await source.get();
      client = await pool.connect();
    } catch (err) {
      return fail(err);
    }
    const tx: Transaction = {
      query: queryOn(
        async () => client,
        () => pool,
        seen,
      ),
      async exec(sql) {
        await client.query(sql).catch(fail);
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
      await client.query('BEGIN').catch(fail);
      const result = await fn(tx);
      // fn may have caught the mismatch and carried on: the transaction is aborted, and a
      // COMMIT would quietly roll it back while fn's result claimed success.
      if (seen.mismatch) throw new PreparedMismatch(undefined);
      if (to?.onCommitLsn) {
        const res = (await client
          .query('COMMIT; SELECT pg_current_wal_insert_lsn()::text AS lsn')
          .catch(fail)) as unknown as pg.QueryResult<{ lsn: string }>[];
        const lsn = res[1]?.rows[0]?.lsn;
        if (lsn) to.onCommitLsn(lsn);
      } else {
        await client.query('COMMIT').catch(fail);
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
  }
}
