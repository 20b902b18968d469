import { createHash } from 'node:crypto';
/**
 * The narrow database surface the repositories speak: parameterised SQL in, rows out.
 * Two implementations share it: PostgreSQL through a pg Pool, and embedded PGlite.
 * The SQL and the migrations are the same for both.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    opts?: QueryOptions,
  ): Promise<R[]>;
}

const shapeNames = new Map<string, string>();

/**
 * A statement name for SQL assembled from a fixed set of shapes (an UPDATE whose SET list
 * depends on which fields a patch carries): the same text always gets the same name, so
 * each shape is parsed and planned once per connection. Only for text built from code, never
 * from input: every distinct text is one prepared statement on every connection.
 */
export function shapeName(prefix: string, sql: string): string {
  let name = shapeNames.get(sql);
  if (name === undefined) {
    name = `${prefix}_${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`;
    shapeNames.set(sql, name);
  }
  return name;
}

export interface QueryOptions {
  /**
   * Sends the statement as a named prepared statement (parsed once per connection), unless
   * named statements are turned off (DATABASE_PREPARED_STATEMENTS=false, for PgBouncer in
   * transaction pooling before 1.21). The name must always go with the same text.
   */
  name?: string;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction (BEGIN ... COMMIT, ROLLBACK when fn throws). */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
  /**
   * Pool figures for /metrics. PGlite: its one connection, and the statements and
   * transactions waiting for their turn on it.
   */
  stats(): { total: number; idle: number; waiting: number };
  /**
   * The same database for work that runs beside the requests (webhook delivery). PGlite runs
   * one statement at a time: its statements and transactions go before queued requests'
   * (src/db/admission.ts), so it is not starved by a stream of writes. PostgreSQL: this
   * database itself (the pool already gives such work a connection of its own). Close the
   * database through the handle that opened it, not this one.
   */
  background(): Database;
}

export interface TransactionOptions {
  /**
   * PostgreSQL: called with the WAL insert position read right after COMMIT, in the same
   * round trip (COMMIT and the SELECT go as one simple-protocol message). It lies at or past
   * the end of the commit record, so a replica that has replayed it has this transaction.
   * (An LSN read inside the transaction would precede the commit record.) PGlite: never called.
   */
  onCommitLsn?: (lsn: string) => void;
}

export interface Transaction extends Queryable {
  /** Runs several statements at once (no parameters): used for migrations. */
  exec(sql: string): Promise<void>;
}

/** The database could not be reached or went away mid-request: callers answer 503. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
  constructor(cause: unknown) {
    super('database unavailable', { cause });
  }
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/**
 * True for a driver error saying PostgreSQL rolled the transaction back as the loser of a
 * deadlock or a serialization conflict (SQLSTATE 40P01, 40001): nothing was changed, and
 * the same request sent again normally succeeds (503 with Retry-After, not 500).
 */
export function isConcurrencyLoss(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; severity?: unknown };
  return (e.code === '40P01' || e.code === '40001') && e.severity !== undefined;
}

/** True for errors that mean "no usable connection", as opposed to a bad statement. */
export function isConnectionError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (CONNECTION_CODES.has(code)) return true;
  // SQLSTATE class 08 (connection exception), 57P01..57P03 (shutdown, cannot connect now), 53300 (too many connections)
  if (/^08/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  // The last two: a pool or an embedded database already closed at shutdown is no
  // different for a caller than one that cannot be reached (503, retry elsewhere).
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed|Cannot use a pool after calling end|PGlite is clos(ed|ing)/i.test(
    msg,
  );
}
