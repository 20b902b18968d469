import type { Queryable } from '../db/database.js';
import type { AuditEntry } from './entry.js';

/** SQL only. Every method takes the Queryable to run on, so a change and its row share a transaction. */

/** The columns every audit writer inserts (the single-row append and the group-committed batch). */
export const AUDIT_COLUMNS = 'actor, action, key, version, outcome, request_id, client_ip, client_request_id';

export interface AuditRow {
  id: string;
  at: Date;
  at_text: string;
  actor: string;
  action: string;
  key: string | null;
  version: number | null;
  outcome: string;
  request_id: string | null;
  client_ip: string | null;
  seal_seq: string | null;
  hash: Buffer | null;
}

/** The canonical text of `at` (microseconds, UTC), identical on both backends and in JS. */
const AT_TEXT = `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_text`;
const ROW_COLUMNS = `id::text AS id, at, ${AT_TEXT}, actor, action, key, version, outcome, request_id, client_ip,
  seal_seq::text AS seal_seq, hash`;

const entryParams = (e: AuditEntry): unknown[] => [
  e.actor,
  e.action,
  e.key ?? null,
  e.version ?? null,
  e.outcome,
  e.requestId ?? null,
  e.clientIp ?? null,
  e.clientRequestId ?? false,
];

/**
 * A change's audit row as a CTE of the change's own statement (`WITH audit_row AS (...)`),
 * its parameters appended to `params`: the change and its row are one statement, so a write
 * stays at two statements (the locking read and this) in one transaction.
 */
export function auditRowCte(e: AuditEntry, params: unknown[]): string {
  const first = params.length + 1;
  params.push(...entryParams(e));
  const placeholders = Array.from({ length: 8 }, (_, i) => `$${first + i}`).join(', ');
  return `audit_row AS (INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES (${placeholders}) RETURNING 1)`;
}

export function createAuditRepository() {
  return {
    /** The reusable writer: one row, on the caller's transaction (or the pool). */
    async append(q: Queryable, e: AuditEntry): Promise<void> {
      await q.query(
        `INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        entryParams(e),
      );
    },

    /** Newest first, keyset on id; returns up to limit + 1 rows. */
    async list(
      q: Queryable,
      f: {
        limit: number;
        beforeId?: string | undefined;
        key?: string | undefined;
        actor?: string | undefined;
        action?: string | undefined;
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
      if (f.action !== undefined) add('action = ?', f.action);
      if (f.from !== undefined) add('at >= ?', f.from);
      if (f.to !== undefined) add('at < ?', f.to);
      return q.query<AuditRow>(
        `SELECT ${ROW_COLUMNS} FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY audit_log.id DESC LIMIT $1`,
        params,
      );
    },

    /** Blocks until this transaction holds the sealer lock (released at commit). */
    async lockSealer(q: Queryable, lockId: number): Promise<void> {
      await q.query('SELECT pg_advisory_xact_lock($1)', [lockId]);
    },

    /** Takes the sealer lock if free; false when another instance is sealing right now. */
    async tryLockSealer(q: Queryable, lockId: number): Promise<boolean> {
      const rows = await q.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [lockId]);
      return rows[0]?.ok === true;
    },

    async head(q: Queryable): Promise<{ seal_seq: string; hash: Buffer } | undefined> {
      const rows = await q.query<{ seal_seq: string; hash: Buffer }>(
        'SELECT seal_seq::text AS seal_seq, hash FROM audit_chain_head',
      );
      return rows[0];
    },

    async setHead(q: Queryable, sealSeq: string, hash: Buffer): Promise<void> {
      await q.query(
        `INSERT INTO audit_chain_head (singleton, seal_seq, hash) VALUES (true, $1::bigint, $2)
         ON CONFLICT (singleton) DO UPDATE SET seal_seq = EXCLUDED.seal_seq, hash = EXCLUDED.hash`,
        [sealSeq, hash],
      );
    },

    async unsealed(q: Queryable, limit: number): Promise<AuditRow[]> {
      return q.query<AuditRow>(
        `SELECT ${ROW_COLUMNS} FROM audit_log WHERE seal_seq IS NULL ORDER BY audit_log.id LIMIT $1`,
        [limit],
      );
    },

    async seal(q: Queryable, ids: string[], seqs: string[], hashes: Buffer[]): Promise<void> {
      await q.query(
        `UPDATE audit_log a SET seal_seq = s.seq, hash = s.hash
         FROM (SELECT u.id, u.seq, decode(u.hex, 'hex') AS hash
               FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(id, seq, hex)) s
         WHERE a.id = s.id`,
        // Hashes travel as hex text: both drivers serialise text arrays the same way.
        [ids, seqs, hashes.map((h) => h.toString('hex'))],
      );
    },

    /** Sealed rows in chain order after `afterSeq` (keyset). */
    async sealedAfter(q: Queryable, afterSeq: string, limit: number): Promise<AuditRow[]> {
      return q.query<AuditRow>(
        `SELECT ${ROW_COLUMNS} FROM audit_log WHERE seal_seq > $1::bigint ORDER BY audit_log.seal_seq LIMIT $2`,
        [afterSeq, limit],
      );
    },
  };
}

export type AuditRepository = ReturnType<typeof createAuditRepository>;
