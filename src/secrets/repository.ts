import type { SealedValue } from '../crypto/envelope.js';
import type { Queryable } from '../db/database.js';

/** SQL only: no rules, no crypto. Every method takes the Queryable to run on (pool or transaction). */

export interface SecretRow {
  id: string;
  key: string;
  description: string | null;
  is_active: boolean;
  is_reserved: boolean;
  expires_at: Date | null;
  current_version: number;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
  last_used_by: string | null;
  seq: string;
}

export interface CryptoColumns {
  format: number;
  kid: string;
  wrapped_dek: Buffer;
  dek_iv: Buffer;
  dek_tag: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

export interface RevealRow extends CryptoColumns {
  id: string;
  key: string;
  is_active: boolean;
  expires_at: Date | null;
  expired: boolean;
  version: number;
}

const SECRET_COLUMNS = `id, key, description, is_active, is_reserved, expires_at, current_version,
  created_at, updated_at, last_used_at, last_used_by, seq::text AS seq`;

export const toSealed = (r: CryptoColumns): SealedValue => ({
  format: r.format,
  kid: r.kid,
  wrappedDek: r.wrapped_dek,
  dekIv: r.dek_iv,
  dekTag: r.dek_tag,
  iv: r.iv,
  tag: r.tag,
  ciphertext: r.ciphertext,
});

const sealedParams = (s: SealedValue) => [
  s.format,
  s.kid,
  s.wrappedDek,
  s.dekIv,
  s.dekTag,
  s.iv,
  s.tag,
  s.ciphertext,
];

export function createSecretsRepository() {
  return {
    /**
     * Inserts a new secret and its first version in one statement. Returns false, and
     * writes nothing, when the key already exists (active or soft-deleted).
     */
    async insertNew(
      q: Queryable,
      s: {
        id: string;
        key: string;
        description: string | null;
        isReserved: boolean;
        expiresAt: Date | null;
        createdBy: string;
      },
      sealed: SealedValue,
    ): Promise<boolean> {
      const rows = await q.query(
        `WITH s AS (
           INSERT INTO secrets (id, key, description, is_reserved, expires_at, current_version)
           VALUES ($1, $2, $3, $4, $5, 1)
           ON CONFLICT (key) DO NOTHING
           RETURNING id
         )
         INSERT INTO secret_versions (secret_id, version, created_by, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
         SELECT s.id, 1, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM s
         RETURNING secret_id`,
        [s.id, s.key, s.description, s.isReserved, s.expiresAt, s.createdBy, ...sealedParams(sealed)],
      );
      return rows.length === 1;
    },

    async findByKey(
      q: Queryable,
      key: string,
      opts: { forUpdate?: boolean } = {},
    ): Promise<SecretRow | undefined> {
      const rows = await q.query<SecretRow>(
        `SELECT ${SECRET_COLUMNS} FROM secrets WHERE key = $1${opts.forUpdate ? ' FOR UPDATE' : ''}`,
        [key],
      );
      return rows[0];
    },

    /**
     * Applies a metadata patch and, when `version` is given, stores a new sealed value as
     * that version and makes it current, in one statement.
     */
    async update(
      q: Queryable,
      id: string,
      patch: {
        isActive?: boolean;
        isReserved?: boolean;
        expiresAt?: Date | null;
        description?: string | null;
        version?: { number: number; sealed: SealedValue; createdBy: string };
      },
    ): Promise<void> {
      const params: unknown[] = [id];
      const sets = ['updated_at = now()'];
      const set = (col: string, v: unknown) => {
        params.push(v);
        sets.push(`${col} = $${params.length}`);
      };
      if (patch.isActive !== undefined) set('is_active', patch.isActive);
      if (patch.isReserved !== undefined) set('is_reserved', patch.isReserved);
      if (patch.expiresAt !== undefined) set('expires_at', patch.expiresAt);
      if (patch.description !== undefined) set('description', patch.description);
      if (!patch.version) {
        await q.query(`UPDATE secrets SET ${sets.join(', ')} WHERE id = $1`, params);
        return;
      }
      set('current_version', patch.version.number);
      const v = params.length;
      params.push(patch.version.createdBy, ...sealedParams(patch.version.sealed));
      const p = (i: number) => `$${v + i}`;
      await q.query(
        `WITH ins AS (
           INSERT INTO secret_versions (secret_id, version, created_by, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
           VALUES ($1, $${v}, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)}, ${p(9)})
           RETURNING secret_id
         )
         UPDATE secrets SET ${sets.join(', ')} FROM ins WHERE secrets.id = ins.secret_id`,
        params,
      );
    },

    /**
     * The value read path, in one statement: the secret's state, its current sealed value,
     * and (when the secret is readable) lastUsedAt/lastUsedBy. The last-use stamp is only
     * rewritten when it is older than a second or the reader changed, so a hot key read
     * by many clients does not serialise them on its row lock.
     */
    async reveal(q: Queryable, key: string, actor: string): Promise<RevealRow | undefined> {
      const rows = await q.query<RevealRow>(
        `WITH cur AS (
           SELECT id, key, is_active, expires_at, current_version,
                  (expires_at IS NOT NULL AND expires_at <= now()) AS expired
           FROM secrets WHERE key = $1
         ), touch AS (
           UPDATE secrets s SET last_used_at = now(), last_used_by = $2
           FROM cur
           WHERE s.id = cur.id AND cur.is_active AND NOT cur.expired
             AND (s.last_used_at IS NULL OR s.last_used_at < now() - interval '1 second'
                  OR s.last_used_by IS DISTINCT FROM $2)
           RETURNING s.id
         )
         SELECT cur.id, cur.key, cur.is_active, cur.expires_at, cur.expired, cur.current_version AS version,
                v.format, v.kid, v.wrapped_dek, v.dek_iv, v.dek_tag, v.iv, v.tag, v.ciphertext
         FROM cur JOIN secret_versions v ON v.secret_id = cur.id AND v.version = cur.current_version`,
        [key, actor],
      );
      return rows[0];
    },

    /**
     * Newest first, keyset-paginated on seq (never OFFSET). Returns up to limit + 1 rows.
     * ORDER BY names secrets.seq: a bare "seq" would mean the seq::text output column, which
     * sorts "9" above "10" and cannot use the index (a full scan and sort on every page).
     */
    async list(
      q: Queryable,
      opts: {
        limit: number;
        beforeSeq?: string | undefined;
        prefix?: string | undefined;
        active?: boolean | undefined;
      },
    ): Promise<SecretRow[]> {
      const params: unknown[] = [opts.limit + 1];
      const where: string[] = [];
      if (opts.beforeSeq !== undefined) {
        params.push(opts.beforeSeq);
        where.push(`seq < $${params.length}::bigint`);
      }
      if (opts.prefix) {
        params.push(opts.prefix);
        where.push(`starts_with(key, $${params.length})`);
      }
      if (opts.active !== undefined) {
        params.push(opts.active);
        where.push(`is_active = $${params.length}`);
      }
      return q.query<SecretRow>(
        `SELECT ${SECRET_COLUMNS} FROM secrets ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY secrets.seq DESC LIMIT $1`,
        params,
      );
    },
  };
}

export type SecretsRepository = ReturnType<typeof createSecretsRepository>;
