import type { Queryable } from '../db/database.js';
import { schemaHorizon } from '../db/xid-horizon.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { recordedOrNull, recordedText } from '../storable-text.js';
import type { SealedRowContent, StoredSeal } from './chain.js';
import type { AuditEntry } from './entry.js';

/** SQL only. Every method takes the Queryable to run on, so a change and its row share a transaction. */

/** The columns every audit writer inserts (the single-row append and the group-committed batch). */
export const AUDIT_COLUMNS = 'actor, action, key, version, outcome, request_id, client_ip, client_request_id';

export interface AuditRow extends SealedRowContent {
  at: Date;
  /** Whether a seal covers the row yet (its transaction lies below the chain head). */
  sealed: boolean;
}

/** The canonical text of a time (microseconds, UTC), identical on both backends and in JS. */
const usText = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
/** A seal's day bound as JS's toISOString renders it (bounds are whole days), NULL stays NULL. */
const msText = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
export const ROW_CONTENT = `id::text AS id, ${usText('at')} AS at_text, actor, action, key, version, outcome,
  request_id, client_ip, client_request_id, xid::text AS xid, environment`;
const SEAL_COLUMNS = `seq::text AS seq, xid_from::text AS xid_from, xid_to::text AS xid_to,
  ${msText('at_lo')} AS at_lo, ${msText('at_hi')} AS at_hi, first_id::text AS first_id, last_id::text AS last_id,
  row_count, row_digests, prev_hash, hash`;

export interface ChainHead {
  seal_seq: string;
  hash: Buffer;
  xid_to: string;
}

export interface Anchor {
  seal_seq: string;
  hash: Buffer;
  xid_from: string;
  xid_to: string;
  at_hi: string | null;
  archive: string;
}

export interface NewSeal {
  seq: string;
  xidFrom: string;
  xidTo: string;
  atLo: string | null;
  atHi: string | null;
  firstId: string;
  lastId: string;
  minAt: string;
  maxAt: string;
  rowCount: number;
  rowDigests: Buffer;
  prevHash: Buffer;
  hash: Buffer;
}

/**
 * An entry's column values in AUDIT_COLUMNS order, as every audit writer sends them (this
 * single-row append and the group-committed batch, src/audit/writer.ts). The free-text
 * columns may carry what a refused request sent (a path key, a JWT subject), so they go
 * through recordedText: a row is always storable, and one caller's bytes cannot fail a
 * statement that holds other callers' rows.
 */
export const entryParams = (e: AuditEntry): unknown[] => [
  recordedText(e.actor),
  e.action,
  recordedOrNull(e.key),
  e.version ?? null,
  e.outcome,
  recordedOrNull(e.requestId),
  recordedOrNull(e.clientIp),
  e.clientRequestId ?? false,
];

/**
 * The environment column as stored: null for `default` (as on every row written before
 * environments existed, so the default environment's rows, their statements and their
 * sealed content are what they were), the name otherwise. Rows that carry one are written
 * with the extra column (`environment`) and one more parameter.
 */
export const storedEnvironment = (e: AuditEntry): string | null =>
  e.environment == null || e.environment === DEFAULT_ENVIRONMENT ? null : recordedText(e.environment);

/** AUDIT_COLUMNS' types, in order (a parameter in INSERT ... SELECT needs its cast). */
const AUDIT_COLUMN_TYPES = ['text', 'text', 'text', 'int', 'text', 'text', 'text', 'boolean'];

/**
 * A change's audit row as a CTE of the change's own statement (`WITH audit_row AS (...)`),
 * its parameters appended to `params`: the change and its row are one statement, so a write
 * stays at two statements (the read and this). With `after`, the row is inserted once per
 * row of that CTE (a guarded change's `UPDATE ... RETURNING`): when the change matched
 * nothing, no row is written.
 */
export function auditRowCte(e: AuditEntry, params: unknown[], after?: string): string {
  const first = params.length + 1;
  const env = storedEnvironment(e);
  params.push(...entryParams(e), ...(env === null ? [] : [env]));
  const types = env === null ? AUDIT_COLUMN_TYPES : [...AUDIT_COLUMN_TYPES, 'text'];
  const values = types.map((t, i) => `$${first + i}::${t}`).join(', ');
  const rows = after === undefined ? `VALUES (${values})` : `SELECT ${values} FROM ${after}`;
  return `audit_row AS (INSERT INTO audit_log (${columnsFor(env !== null)}) ${rows} RETURNING id)`;
}

/** Many rows' INSERT (no RETURNING), its parameters appended to `params`: appendMany's statement, for a caller that adds to it. */
export function auditRowsInsert(entries: readonly AuditEntry[], params: unknown[]): string {
  const first = params.length + 1;
  const rows = entries.map(entryParams);
  const envs = entries.map(storedEnvironment);
  const withEnv = envs.some((e) => e !== null);
  const types = withEnv ? [...AUDIT_COLUMN_TYPES, 'text'] : AUDIT_COLUMN_TYPES;
  params.push(...AUDIT_COLUMN_TYPES.map((_, i) => rows.map((p) => p[i])), ...(withEnv ? [envs] : []));
  return `INSERT INTO audit_log (${columnsFor(withEnv)}) SELECT * FROM unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(', ')})`;
}

/** The inserted columns: AUDIT_COLUMNS, and the environment when some row names one. */
export const columnsFor = (withEnvironment: boolean) =>
  withEnvironment ? `${AUDIT_COLUMNS}, environment` : AUDIT_COLUMNS;

export class AuditRepository {
  /** The reusable writer: one row, on the caller's transaction (or the pool). */
  async append(q: Queryable, e: AuditEntry): Promise<void> {
    const env = storedEnvironment(e);
    await q.query(
      env === null
        ? `INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
        : `INSERT INTO audit_log (${columnsFor(true)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      env === null ? entryParams(e) : [...entryParams(e), env],
    );
  }

  /** Many rows in one statement, on the caller's transaction (a batch import's rows). */
  async appendMany(q: Queryable, entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const params = entries.map(entryParams);
    const envs = entries.map(storedEnvironment);
    const withEnv = envs.some((e) => e !== null);
    const types = withEnv ? [...AUDIT_COLUMN_TYPES, 'text'] : AUDIT_COLUMN_TYPES;
    await q.query(
      `INSERT INTO audit_log (${columnsFor(withEnv)}) SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`,
      [...AUDIT_COLUMN_TYPES.map((_, i) => params.map((p) => p[i])), ...(withEnv ? [envs] : [])],
      { name: withEnv ? 'audit_rows_append_env' : 'audit_rows_append' },
    );
  }

  /** Newest first, keyset on id; returns up to limit + 1 rows. */
  async list(
    q: Queryable,
    f: {
      limit: number;
      beforeId?: string | undefined;
      key?: string | undefined;
      actor?: string | undefined;
      /** Any of these actions. */
      action?: string[] | undefined;
      /** None of these actions. */
      excludeAction?: string[] | undefined;
      /** Rows of this environment; `default` includes secret rows from before environments. */
      environment?: string | undefined;
      from?: Date | undefined;
      to?: Date | undefined;
    },
  ): Promise<AuditRow[]> {
    const params: unknown[] = [f.limit + 1];
    const where: string[] = [];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.beforeId !== undefined) add('id < ?::bigint', f.beforeId);
    if (f.key !== undefined) add('key = ?', f.key);
    if (f.actor !== undefined) add('actor = ?', f.actor);
    if (f.action !== undefined) add('action = ANY(?::text[])', f.action);
    if (f.excludeAction !== undefined) add('action <> ALL(?::text[])', f.excludeAction);
    // default's rows are stored without a name (storedEnvironment): its secret rows, and
    // the compare rows of its side.
    if (f.environment === DEFAULT_ENVIRONMENT)
      where.push(`(environment IS NULL AND (action LIKE 'secret.%' OR action = 'environment.compare'))`);
    else if (f.environment !== undefined) add('environment = ?', f.environment);
    if (f.from !== undefined) add('at >= ?', f.from);
    if (f.to !== undefined) add('at < ?', f.to);
    return q.query<AuditRow>(
      `SELECT ${ROW_CONTENT}, at,
         xid < coalesce((SELECT xid_to FROM audit_chain_head), '0'::xid8) AS sealed
       FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY audit_log.id DESC LIMIT $1`,
      params,
    );
  }

  /** Blocks until this transaction holds the lock (released at commit). */
  async lock(q: Queryable, lockId: number): Promise<void> {
    await q.query('SELECT pg_advisory_xact_lock($1)', [lockId]);
  }

  /** Takes the lock if free; false when another instance holds it right now. */
  async tryLock(q: Queryable, lockId: number): Promise<boolean> {
    const rows = await q.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [lockId]);
    return rows[0]?.ok === true;
  }

  async head(q: Queryable): Promise<ChainHead | undefined> {
    const rows = await q.query<ChainHead>(
      'SELECT seal_seq::text AS seal_seq, hash, xid_to::text AS xid_to FROM audit_chain_head',
    );
    return rows[0];
  }

  async setHead(q: Queryable, h: ChainHead): Promise<void> {
    await q.query(
      `INSERT INTO audit_chain_head (singleton, seal_seq, hash, xid_to) VALUES (true, $1::bigint, $2, $3::xid8)
       ON CONFLICT (singleton) DO UPDATE
         SET seal_seq = EXCLUDED.seal_seq, hash = EXCLUDED.hash, xid_to = EXCLUDED.xid_to`,
      [h.seal_seq, h.hash, h.xid_to],
    );
  }

  async anchor(q: Queryable): Promise<Anchor | undefined> {
    const rows = await q.query<Anchor>(
      `SELECT seal_seq::text AS seal_seq, hash, xid_from::text AS xid_from, xid_to::text AS xid_to,
         ${msText('at_hi')} AS at_hi, archive FROM audit_anchor`,
    );
    return rows[0];
  }

  async setAnchor(q: Queryable, a: Anchor): Promise<void> {
    await q.query(
      `INSERT INTO audit_anchor (singleton, seal_seq, hash, xid_from, xid_to, at_hi, archive)
       VALUES (true, $1::bigint, $2, $3::xid8, $4::xid8, $5::timestamptz, $6)
       ON CONFLICT (singleton) DO UPDATE SET seal_seq = EXCLUDED.seal_seq, hash = EXCLUDED.hash,
         xid_from = EXCLUDED.xid_from, xid_to = EXCLUDED.xid_to, at_hi = EXCLUDED.at_hi,
         archive = EXCLUDED.archive, archived_at = now()`,
      [a.seal_seq, a.hash, a.xid_from, a.xid_to, a.at_hi, a.archive],
    );
  }

  /**
   * Every transaction of this schema below this id has finished (committed or rolled back):
   * the audit rows with a smaller xid are final, and visible to this transaction's later
   * statements (READ COMMITTED). The horizon of src/db/xid-horizon.ts: audit rows are written
   * only by the service's own transactions, which lock audit_log (a relation of this schema)
   * before their insert assigns the xid the row carries, and hold that lock until they end;
   * a transaction of another database or another schema is not waited for. Called before
   * this transaction writes anything.
   */
  async finishedBelow(q: Queryable): Promise<string> {
    return schemaHorizon(q);
  }

  /** The next transaction id to be assigned: every row committed so far has a smaller xid. */
  async nextXid(q: Queryable): Promise<string> {
    const rows = await q.query<{ x: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x');
    return rows[0]?.x ?? '0';
  }

  /** The xid of the (skip+1)-th row in xid order within [from, to), to bound a seal's size. */
  async xidAfterRows(q: Queryable, from: string, to: string, skip: number): Promise<string | undefined> {
    const rows = await q.query<{ x: string }>(
      `SELECT xid::text AS x FROM audit_log WHERE xid >= $1::xid8 AND xid < $2::xid8
       ORDER BY audit_log.xid OFFSET $3 LIMIT 1`,
      [from, to, skip],
    );
    return rows[0]?.x;
  }

  /** The rows with xid in [from, to) and at in [atLo, atHi) (null = unbounded), in id order. */
  async rowsIn(
    q: Queryable,
    r: { xidFrom: string; xidTo: string; atLo: string | null; atHi: string | null },
  ): Promise<SealedRowContent[]> {
    return q.query<SealedRowContent>(
      `SELECT ${ROW_CONTENT} FROM audit_log
       WHERE xid >= $1::xid8 AND xid < $2::xid8
         AND ($3::timestamptz IS NULL OR at >= $3::timestamptz)
         AND ($4::timestamptz IS NULL OR at < $4::timestamptz)
       ORDER BY audit_log.id`,
      [r.xidFrom, r.xidTo, r.atLo, r.atHi],
    );
  }

  async insertSeal(q: Queryable, s: NewSeal): Promise<void> {
    await q.query(
      `INSERT INTO audit_seals (seq, xid_from, xid_to, at_lo, at_hi, first_id, last_id, min_at, max_at,
         row_count, row_digests, prev_hash, hash)
       VALUES ($1::bigint, $2::xid8, $3::xid8, $4::timestamptz, $5::timestamptz, $6::bigint, $7::bigint,
         $8::timestamptz, $9::timestamptz, $10, $11, $12, $13)`,
      [
        s.seq,
        s.xidFrom,
        s.xidTo,
        s.atLo,
        s.atHi,
        s.firstId,
        s.lastId,
        s.minAt,
        s.maxAt,
        s.rowCount,
        s.rowDigests,
        s.prevHash,
        s.hash,
      ],
    );
  }

  /** Seals in chain order after `afterSeq` up to `lastSeq` (keyset). */
  async sealsAfter(q: Queryable, afterSeq: string, lastSeq: string, limit: number): Promise<StoredSeal[]> {
    return q.query<StoredSeal>(
      `SELECT ${SEAL_COLUMNS} FROM audit_seals WHERE seq > $1::bigint AND seq <= $2::bigint ORDER BY audit_seals.seq LIMIT $3`,
      [afterSeq, lastSeq, limit],
    );
  }

  /**
   * A row that claims a transaction whose seals were archived: it cannot be genuine
   * (the archive holds every row of those seals), so it was inserted afterwards.
   */
  async rowBelowAnchor(q: Queryable, a: Anchor): Promise<string | undefined> {
    const rows = await q.query<{ id: string }>(
      `SELECT id::text AS id FROM audit_log
       WHERE xid < $1::xid8
          OR (xid < $2::xid8 AND ($3::timestamptz IS NULL OR at < $3::timestamptz))
       ORDER BY audit_log.id LIMIT 1`,
      [a.xid_from, a.xid_to, a.at_hi],
    );
    return rows[0]?.id;
  }
}

/**
 * The repository as a plain object of its methods (none of them uses `this`), for a caller
 * that builds it alone: such a caller may spread it and replace one method (a test runs the
 * sealer of an older schema that way).
 */
export function createAuditRepository(): AuditRepositoryMethods {
  const repo = new AuditRepository();
  const methods = Object.getOwnPropertyNames(AuditRepository.prototype).filter((n) => n !== 'constructor');
  return Object.fromEntries(
    methods.map((n) => [n, repo[n as keyof AuditRepository]]),
  ) as unknown as AuditRepositoryMethods;
}

/** The repository's methods as properties (a spread keeps them; a class's methods it drops). */
export type AuditRepositoryMethods = { [K in keyof AuditRepository]: AuditRepository[K] };
