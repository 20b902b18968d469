import type { Queryable } from '../db/database.js';
import { newestFirst } from '../db/rows.js';

/** SQL only. Every method takes the Queryable to run on. */

export interface AccessKeyRow {
  id: string;
  seq: string;
  name: string;
  token_prefix: string;
  token_hash: Buffer;
  scopes: string[];
  key_patterns: string[] | null;
  /** Environment names, or ['*']. */
  environments: string[];
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

export interface AuthKeyRow extends AccessKeyRow {
  expired: boolean;
}

const COLUMNS = `id, seq::text AS seq, name, token_prefix, token_hash, scopes, key_patterns, environments, created_by,
  created_at, expires_at, revoked_at, last_used_at`;

/** The SQL of access keys: each method one statement on the Queryable it is given. */
export class AccessKeysRepository {
  async insert(
    q: Queryable,
    k: {
      id: string;
      name: string;
      tokenPrefix: string;
      tokenHash: Buffer;
      scopes: string[];
      keyPatterns: string[] | null;
      environments: string[];
      createdBy: string;
      expiresAt: Date | null;
    },
  ): Promise<AccessKeyRow> {
    const rows = await q.query<AccessKeyRow>(
      `INSERT INTO access_keys (id, name, token_prefix, token_hash, scopes, key_patterns, created_by, expires_at, environments)
       VALUES ($1, $2, $3, $4, $5::text[], $6::text[], $7, $8, $9::text[]) RETURNING ${COLUMNS}`,
      [
        k.id,
        k.name,
        k.tokenPrefix,
        k.tokenHash,
        k.scopes,
        k.keyPatterns,
        k.createdBy,
        k.expiresAt,
        k.environments,
      ],
    );
    return rows[0] as AccessKeyRow;
  }

  /**
   * The authentication lookup, in one statement: the key by token digest and, when it is
   * usable, its lastUsedAt (rewritten at most once a second, so a busy key does not
   * serialise its callers on the row lock).
   */
  async findByTokenHash(q: Queryable, tokenHash: Buffer): Promise<AuthKeyRow | undefined> {
    const rows = await q.query<AuthKeyRow>(
      `WITH k AS (
         SELECT ${COLUMNS}, (expires_at IS NOT NULL AND expires_at <= now()) AS expired
         FROM access_keys WHERE token_hash = $1
       ), touch AS (
         UPDATE access_keys a SET last_used_at = now() FROM k
         WHERE a.id = k.id AND k.revoked_at IS NULL AND NOT k.expired
           AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 second')
         RETURNING a.id
       )
       SELECT * FROM k`,
      [tokenHash],
    );
    return rows[0];
  }

  /** Newest first, keyset on seq; up to limit + 1 rows. */
  listPage(q: Queryable, page: { limit: number; beforeSeq?: string | undefined }): Promise<AccessKeyRow[]> {
    return newestFirst(q, `SELECT ${COLUMNS} FROM access_keys`, 'access_keys.seq', page);
  }

  /** Revokes (idempotently: the first revocation time is kept). Undefined when there is no such key. */
  async revokeRow(q: Queryable, id: string): Promise<AccessKeyRow | undefined> {
    const rows = await q.query<AccessKeyRow>(
      `UPDATE access_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0];
  }
}
