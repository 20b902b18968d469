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
  connectionTimeoutMillis?: number;
  /**
   * Client-side limit on one statement's answer (pg's query_timeout): the statement fails
   * and its connection is dropped. Set for replica pools, so a replica that accepts
   * connections but stops answering costs a read this long before the primary answers it.
   */
  queryTimeoutMillis?: number;
  /**
   * Named prepared statements for the hot statements (default true). PgBouncer in
   * transaction pooling mode before 1.21 hands each transaction another server connection,
   * where a statement prepared on the first does not exist: turn them off there.
   */
  preparedStatements?: boolean;
  /**
   * Told once when named statements were found not to survive between transactions (a
   * transaction-pooling PgBouncer before 1.21) and were turned off for this process.
   */
  onPreparedStatementsOff?: () => void;
  /** Multi-host: told which host the connections go to, and why they moved (never a password). */
  onHostChange?: (event: { host: string | undefined; reason: string }) => void;
}

/**
 * SQLSTATE of a named statement that does not exist (26000) or already exists (42P05) on the
 * server connection: what a transaction-pooling proxy that does not track prepared
 * statements (PgBouncer before 1.21) causes when it hands us another server connection.
 * Both are raised before the statement runs, so running it again unnamed is safe.
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
  const poolFor = (connectionString: string, onConnect?: (c: pg.ClientBase) => Promise<void>) => {
    const pool = new pg.Pool({
      connectionString,
      ...(onConnect ? { onConnect } : {}),
      max: opts.max ?? 20,
      // Fail fast when the database is down, so requests get a 503 instead of hanging.
      connectionTimeoutMillis: timeoutMs,
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
   * Behind a proxy that loses named statements between transactions, the first mismatch
   * turns them off for the process (one warning naming the setting) instead of failing
   * requests: an autocommit statement is run again unnamed; one inside a transaction cannot
   * be (the transaction is aborted), so it answers 503 and the caller's retry goes unnamed.
   */
  const preparedMismatch = (err: unknown, named: boolean): boolean => {
    if (!named || !PREPARED_MISMATCH.has(codeOf(err) ?? '')) return false;
    if (prepared) {
      prepared = false;
      opts.onPreparedStatementsOff?.();
    }
    return true;
  };

  const queryOn =
    (
      pick: () => Promise<pg.Pool | pg.PoolClient>,
      pool: () => pg.Pool | undefined,
      inTransaction: boolean,
    ): Queryable['query'] =>
    async <R>(sql: string, params?: readonly unknown[], qo?: QueryOptions) => {
      let c: pg.Pool | pg.PoolClient | undefined;
      const values = params as unknown[] | undefined;
      const named = Boolean(qo?.name && prepared);
      try {
        c = await pick();
        const res = named
          ? await c.query({ name: qo!.name!, text: sql, ...(values ? { values } : {}) })
          : await c.query(sql, values);
        return res.rows as R[];
      } catch (err) {
        if (preparedMismatch(err, named)) {
          if (inTransaction || !c) throw new DatabaseUnavailableError(err);
          try {
            return (await c.query(sql, values)).rows as R[];
          } catch (again) {
            return translate(again);
          }
        }
        const p = pool() ?? (c instanceof pg.Pool ? c : undefined);
        if (p) source.failed(p, err);
        return translate(err);
      }
    };

  return {
    kind: 'postgres',
    query: queryOn(
      () => source.get(),
      () => undefined,
      false,
    ),
    async transaction<T>(fn: (tx: Transaction) => Promise<T>, to?: TransactionOptions): Promise<T> {
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
          true,
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
  };
}
