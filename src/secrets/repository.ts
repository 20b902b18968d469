import type { z } from 'zod';
import type { AuditEntry } from '../audit/entry.js';
import { AuditRepository, auditRowCte, auditRowsInsert } from '../audit/repository.js';
import type { SealedValue } from '../crypto/envelope.js';
import { type Queryable, shapeName } from '../db/database.js';
import { type CryptoColumns, cryptoColumns, sealedParams } from '../db/sealed-columns.js';
import { appendEventsSql, type ChangeEvent, outboxCte } from '../events/outbox.js';
import { type Visibility, visibilitySql } from '../identity/visibility.js';
import { LAST_USED_STAMP_SECONDS } from './read-marks.js';
import type { secretMetadata } from './schemas.js';

/** SQL only: no rules, no crypto. Every method takes the Queryable to run on (pool or transaction). */

export interface SecretRow {
  id: string;
  key: string;
  description: string | null;
  is_active: boolean;
  is_reserved: boolean;
  /** Never revealed to anyone; delivered only to secrets:inject (migrations/006). Never cleared. */
  write_only: boolean;
  expires_at: Date | null;
  current_version: number;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
  last_used_by: string | null;
  seq: string;
  /** Bumped by every change; names the state in the ETag. bigint, so a string. */
  revision: string;
}

/** A secret's metadata as the API shows it: the type of its schema (src/secrets/schemas.ts). */
export type SecretMetadata = z.output<typeof secretMetadata>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * A row as the API shows it. Beside the row and its column lists, so that a new column is
 * read, written and shown from this one file.
 */
export function toMetadata(r: SecretRow): SecretMetadata {
  return {
    id: r.id,
    key: r.key,
    description: r.description,
    isActive: r.is_active,
    isReserved: r.is_reserved,
    isWriteOnly: r.write_only,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    expiresAt: iso(r.expires_at),
    lastUsedAt: iso(r.last_used_at),
    lastUsedBy: r.last_used_by,
    version: r.current_version,
  };
}

export interface RevealRow extends CryptoColumns {
  id: string;
  key: string;
  is_active: boolean;
  write_only: boolean;
  expires_at: Date | null;
  expired: boolean;
  revision: string;
  /** The version asked for (the current one by default). */
  version: number;
  /** False when the secret exists but that version does not (pruned or never written). */
  has_version: boolean;
  /** The lastUsed stamp is missing or older than LAST_USED_STAMP_SECONDS: this read rewrites it. */
  stamp_due: boolean;
}

/** What an update may change; `version` stores a new sealed value as that version. */
export interface SecretPatch {
  isActive?: boolean;
  isReserved?: boolean;
  /** Only ever true: the flag cannot be cleared (the service refuses, and a trigger too). */
  writeOnly?: true;
  expiresAt?: Date | null;
  description?: string | null;
  version?: { number: number; sealed: SealedValue; createdBy: string; keep: number } | undefined;
}

export interface VersionRow {
  version: number;
  kid: string;
  created_at: Date;
  created_by: string | null;
}

/**
 * What every changed secret writes beside its change (built by `alongside` in
 * src/secrets/changes.ts), in the change's own statement: one CTE per field
 * (alongsideCtes), or on the change's transaction beside its statement (appendAlongside: a
 * new secret's insert and a rotation batch, after it; a deleted environment's erasure batch,
 * before it). A new per-change row is one field here and one line in each of the two.
 */
export interface Alongside {
  audit: AuditEntry;
  /** The change's event (the outbox): none for a failed rotation's row. */
  event?: ChangeEvent | undefined;
}

/** The Alongside rows as CTEs of the change's statement, inserted once per row of `after`. */
function alongsideCtes(side: Alongside, params: unknown[], after?: string): string[] {
  return [
    auditRowCte(side.audit, params, after),
    ...(side.event ? [outboxCte(side.event, params, after)] : []),
  ];
}

const auditRows = new AuditRepository();

const secretColumns = (t: string) => `${t}.id, ${t}.key, ${t}.description, ${t}.is_active, ${t}.is_reserved,
  ${t}.write_only, ${t}.expires_at, ${t}.current_version, ${t}.created_at, ${t}.updated_at, ${t}.last_used_at, ${t}.last_used_by,
  ${t}.seq::text AS seq, ${t}.revision::text AS revision`;
const SECRET_COLUMNS = secretColumns('secrets');
const CRYPTO = cryptoColumns();
const V_CRYPTO = cryptoColumns('v');

/**
 * lastUsedAt/lastUsedBy to the second without a write per read: the audit writer rewrites
 * the stored stamp (secrets.last_used_at/by) at most once a minute per secret
 * (LAST_USED_STAMP_SECONDS in src/secrets/read-marks.ts), and the newest success read at or after
 * that stamp comes from the audit trail. Every read that sets or skips the stamp leaves such
 * a row (the stamping read's own row has at >= the stamp), so the newest of them is the last
 * use. The lookup walks audit_log_key_idx backwards, and `at >= stamp` lets PostgreSQL
 * prune it to the partitions of the last minute; a secret never read (stamp NULL) skips it.
 * Once retention has dropped those rows the stored stamp answers (at most a minute early).
 */
const LAST_READ_JOIN = `LEFT JOIN LATERAL (
  SELECT a.at, a.actor FROM audit_log a
  WHERE secrets.last_used_at IS NOT NULL AND a.key = secrets.key AND a.at >= secrets.last_used_at
    AND coalesce(a.environment, 'default') = secrets.environment
    AND a.action = 'secret.read' AND a.outcome = 'success'
  ORDER BY a.id DESC LIMIT 1
) last_read ON true`;

/**
 * The audit actor as lastUsedBy shows it (actorLabel in src/identity/actor.ts, in SQL):
 * admin:<sub> is the sub, access_key:<id> is access_key:<name>, anything else as it is.
 */
const LAST_READ_BY = `CASE
  WHEN last_read.actor IS NULL THEN secrets.last_used_by
  WHEN last_read.actor LIKE 'admin:%' THEN substr(last_read.actor, 7)
  WHEN last_read.actor ~ '^access_key:[0-9a-f-]{36}$' THEN 'access_key:' || COALESCE(
    (SELECT k.name FROM access_keys k WHERE k.id = substr(last_read.actor, 12)::uuid), substr(last_read.actor, 12))
  ELSE last_read.actor END`;

/** SECRET_COLUMNS with lastUsedAt/lastUsedBy from LAST_READ_JOIN. */
const LISTED_COLUMNS = `secrets.id, secrets.key, secrets.description, secrets.is_active, secrets.is_reserved,
  secrets.write_only, secrets.expires_at, secrets.current_version, secrets.created_at, secrets.updated_at,
  COALESCE(last_read.at, secrets.last_used_at) AS last_used_at, ${LAST_READ_BY} AS last_used_by,
  secrets.seq::text AS seq, secrets.revision::text AS revision`;

export class SecretsRepository {
  /**
   * Inserts a new secret and its first version in one statement. Returns false, and
   * writes nothing, when the key already exists (active or soft-deleted).
   */
  async insertNew(
    q: Queryable,
    s: {
      id: string;
      /** The environment it is created in (its row is held by the caller: holdEnvironment). */
      environment: string;
      key: string;
      description: string | null;
      isReserved: boolean;
      writeOnly?: boolean;
      expiresAt: Date | null;
      createdBy: string;
    },
    sealed: SealedValue,
  ): Promise<boolean> {
    const rows = await q.query(
      `WITH s AS (
         INSERT INTO secrets (id, key, description, is_reserved, expires_at, current_version, write_only, environment)
         VALUES ($1, $2, $3, $4, $5, 1, $15, $16)
         ON CONFLICT (environment, key) DO NOTHING
         RETURNING id
       )
       INSERT INTO secret_versions (secret_id, version, created_by, ${CRYPTO})
       SELECT s.id, 1, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM s
       RETURNING secret_id`,
      [
        s.id,
        s.key,
        s.description,
        s.isReserved,
        s.expiresAt,
        s.createdBy,
        ...sealedParams(sealed),
        s.writeOnly ?? false,
        s.environment,
      ],
      { name: 'secret_create' },
    );
    return rows.length === 1;
  }

  /**
   * Keeps a named environment from being deleted until the caller's transaction ends (its
   * deletion locks the row exclusively, then counts its active secrets): a create in it
   * holds it. False when it does not exist (deleted meanwhile). `default` needs no hold.
   */
  async holdEnvironment(q: Queryable, environment: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM environments WHERE name = $1 FOR KEY SHARE', [environment], {
      name: 'environment_hold',
    });
    return rows.length === 1;
  }

  async findByKey(
    q: Queryable,
    environment: string,
    key: string,
    opts: { forUpdate?: boolean } = {},
  ): Promise<SecretRow | undefined> {
    const rows = await q.query<SecretRow>(
      `SELECT ${SECRET_COLUMNS} FROM secrets WHERE environment = $2 AND key = $1${opts.forUpdate ? ' FOR UPDATE' : ''}`,
      [key, environment],
      { name: opts.forUpdate ? 'secret_by_key_locked' : 'secret_by_key' },
    );
    return rows[0];
  }

  /**
   * The rows of many keys under their locks, in one statement: locked in key order (two
   * overlapping imports cannot deadlock), one round trip for a whole import.
   */
  async lockManyByKey(q: Queryable, environment: string, keys: readonly string[]): Promise<SecretRow[]> {
    return q.query<SecretRow>(
      `SELECT ${SECRET_COLUMNS} FROM secrets WHERE environment = $2 AND key = ANY($1::text[]) ORDER BY key FOR UPDATE`,
      [keys, environment],
      { name: 'secrets_by_keys_locked' },
    );
  }

  /** An environment's soft-deleted secrets under their locks, in key order (its deletion erases them). */
  async lockInactive(q: Queryable, environment: string): Promise<SecretRow[]> {
    return q.query<SecretRow>(
      `SELECT ${SECRET_COLUMNS} FROM secrets WHERE environment = $1 AND NOT is_active ORDER BY key FOR UPDATE`,
      [environment],
      { name: 'secrets_inactive_locked' },
    );
  }

  /**
   * The secret's row under its lock together with one stored version's sealed value (its
   * crypto columns null when that version does not exist): a rollback's one read.
   */
  async lockWithVersion(
    q: Queryable,
    environment: string,
    key: string,
    version: number,
  ): Promise<(SecretRow & { old: CryptoColumns | null }) | undefined> {
    const rows = await q.query<SecretRow & Partial<CryptoColumns> & { has_old: boolean }>(
      `SELECT ${SECRET_COLUMNS},
              v.secret_id IS NOT NULL AS has_old,
              ${V_CRYPTO}
       FROM secrets LEFT JOIN secret_versions v ON v.secret_id = secrets.id AND v.version = $2
       WHERE secrets.environment = $3 AND secrets.key = $1 FOR UPDATE OF secrets`,
      [key, version, environment],
      { name: 'secret_lock_with_version' },
    );
    const r = rows[0];
    if (!r) return undefined;
    const { has_old, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext, ...secret } = r;
    return {
      ...(secret as SecretRow),
      old: has_old
        ? ({ format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext } as CryptoColumns)
        : null,
    };
  }

  /**
   * Applies a metadata patch and, when `version` is given, stores a new sealed value as
   * that version, makes it current and prunes versions beyond the newest `keep`, in one
   * statement with the change's audit row. Guarded: it changes the secret only while its
   * revision is still `expected`, and then bumps it. Returns the new revision, or
   * undefined when the secret was changed (or erased) since `expected` was read: then
   * nothing at all was written, not the version, not the audit row.
   */
  async updateRow(
    q: Queryable,
    cur: { id: string; revision: string },
    patch: SecretPatch,
    /** What the change writes beside it (its audit row...), inserted by the same statement. */
    side: Alongside,
  ): Promise<string | undefined> {
    const params: unknown[] = [cur.id, cur.revision];
    const sets = ['updated_at = now()', 'revision = secrets.revision + 1'];
    const set = (col: string, v: unknown) => {
      params.push(v);
      sets.push(`${col} = $${params.length}`);
    };
    if (patch.isActive !== undefined) set('is_active', patch.isActive);
    if (patch.isReserved !== undefined) set('is_reserved', patch.isReserved);
    if (patch.writeOnly) set('write_only', true);
    if (patch.expiresAt !== undefined) set('expires_at', patch.expiresAt);
    if (patch.description !== undefined) set('description', patch.description);
    if (patch.version) set('current_version', patch.version.number);
    // The UPDATE comes first and everything else is written from its RETURNING: when the
    // guard fails (PostgreSQL re-checks it against a concurrently committed row), the
    // other parts have no row to write from.
    const upd = `upd AS (
         UPDATE secrets SET ${sets.join(', ')} WHERE id = $1 AND revision = $2::bigint
         RETURNING id, revision::text AS revision
       )`;
    const parts = [upd];
    if (patch.version) {
      const v = params.length + 1;
      params.push(patch.version.number, patch.version.createdBy, ...sealedParams(patch.version.sealed));
      params.push(patch.version.keep);
      const p = (i: number) => `$${v + i}`;
      // Version numbers only grow by one, so "the newest keep" is "number > new - keep".
      parts.push(`ins AS (
         INSERT INTO secret_versions (secret_id, version, created_by, ${CRYPTO})
         SELECT upd.id, ${p(0)}::int, ${p(1)}::text, ${p(2)}::int, ${p(3)}::text, ${p(4)}::bytea,
                ${p(5)}::bytea, ${p(6)}::bytea, ${p(7)}::bytea, ${p(8)}::bytea, ${p(9)}::bytea FROM upd
       )`);
      parts.push(`pruned AS (
         DELETE FROM secret_versions USING upd
         WHERE secret_versions.secret_id = upd.id AND secret_versions.version <= ${p(0)}::int - ${p(10)}::int
       )`);
    }
    parts.push(...alongsideCtes(side, params, 'upd'));
    const sql = `WITH ${parts.join(', ')} SELECT revision FROM upd`;
    const rows = await q.query<{ revision: string }>(sql, params, {
      name: shapeName(patch.version ? 'secret_update' : 'secret_patch', sql),
    });
    return rows[0]?.revision;
  }

  /** Version metadata of one secret, newest first (never values). */
  async listVersions(q: Queryable, id: string): Promise<VersionRow[]> {
    return q.query<VersionRow>(
      `SELECT version, kid, created_at, created_by FROM secret_versions
       WHERE secret_id = $1 ORDER BY version DESC`,
      [id],
      { name: 'secret_versions_list' },
    );
  }

  /** One stored version's sealed value. */
  async findVersion(q: Queryable, id: string, version: number): Promise<CryptoColumns | undefined> {
    const rows = await q.query<CryptoColumns>(
      `SELECT ${CRYPTO}
       FROM secret_versions WHERE secret_id = $1 AND version = $2`,
      [id, version],
      { name: 'secret_version' },
    );
    return rows[0];
  }

  /**
   * Erases secrets in one statement, however many: their ETags taken out of earlier change
   * events (which keep the name, a record like the audit log's, dropped after
   * EVENTS_RETENTION_DAYS, but not the id), their expiry notices gone, their rows (ON DELETE
   * CASCADE removes the versions in it too). A single purge passes its Alongside rows as
   * `side`, written by the same statement; a deleted environment's erasure
   * (Changes.eraseInactive) writes those of a batch first with appendAlongside, on the same
   * transaction (this statement then clears their events' ETags too). One scan of the
   * events per statement: rare and admin-only.
   */
  async purge(q: Queryable, ids: readonly string[], side?: Alongside): Promise<void> {
    if (side && ids.length !== 1) throw new Error('purge: Alongside rows go with a single secret');
    const params: unknown[] = [ids];
    // An ETag is "<id>.<revision>" quoted: the id is its characters 2 to 37.
    const ctes = [
      ...(side ? alongsideCtes(side, params) : []),
      `purged_etags AS (UPDATE change_events SET etag = NULL
         WHERE etag IS NOT NULL AND substr(etag, 2, 36) = ANY($1::text[]))`,
      'purged_notices AS (DELETE FROM expiry_notices WHERE secret_id = ANY($1::uuid[]))',
    ];
    await q.query(`WITH ${ctes.join(', ')} DELETE FROM secrets WHERE id = ANY($1::uuid[])`, params);
  }

  /**
   * The Alongside rows of changes whose own statement has run (or, an erasure batch, is about
   * to: their secrets still exist, and the purge then clears the events' ETags), on their
   * transaction.
   */
  async appendAlongside(q: Queryable, sides: readonly Alongside[]): Promise<void> {
    if (sides.length === 0) return;
    const events = sides.flatMap((s) => (s.event ? [s.event] : []));
    if (events.length === 0) {
      await auditRows.appendMany(
        q,
        sides.map((s) => s.audit),
      );
      return;
    }
    // Events are joined to their audit rows by key: with a key twice, one side at a time.
    if (new Set(sides.map((s) => s.audit.key)).size < sides.length) {
      for (const s of sides) await this.appendAlongside(q, [s]);
      return;
    }
    const params: unknown[] = [];
    const sql = appendEventsSql(
      auditRowsInsert(
        sides.map((s) => s.audit),
        params,
      ),
      events,
      params,
    );
    await q.query(sql, params, { name: shapeName('alongside_append', sql) });
  }

  /**
   * The value read path: one plain SELECT (sent as a named prepared statement), no row
   * lock and no write, so a replica could answer it. It reads any number of (key, version)
   * pairs at once: concurrent reads share one statement (src/secrets/reveal-batch.ts).
   * Answers are in the order asked; undefined where the key does not exist. The audit row
   * and the lastUsed stamp are written by the group-committed audit writer
   * (src/audit/writer.ts).
   */
  async revealMany(
    q: Queryable,
    wanted: readonly { environment: string; key: string; version: number | null }[],
  ): Promise<(RevealRow | undefined)[]> {
    const rows = await q.query<RevealRow & { i: string }>(
      `SELECT w.i::text AS i, s.id, s.key, s.is_active, s.write_only, s.expires_at,
              (s.expires_at IS NOT NULL AND s.expires_at <= now()) AS expired,
              s.revision::text AS revision, COALESCE(w.version, s.current_version) AS version,
              v.secret_id IS NOT NULL AS has_version,
              (s.last_used_at IS NULL
                OR s.last_used_at < now() - interval '${LAST_USED_STAMP_SECONDS} seconds') AS stamp_due,
              ${V_CRYPTO}
       FROM unnest($1::text[], $2::int[], $3::text[]) WITH ORDINALITY AS w (key, version, env, i)
       JOIN secrets s ON s.environment = w.env AND s.key = w.key
       LEFT JOIN secret_versions v ON v.secret_id = s.id AND v.version = COALESCE(w.version, s.current_version)`,
      [wanted.map((w) => w.key), wanted.map((w) => w.version), wanted.map((w) => w.environment)],
      { name: 'secret_reveal' },
    );
    const out: (RevealRow | undefined)[] = new Array(wanted.length).fill(undefined);
    for (const { i, ...row } of rows) out[Number(i) - 1] = row;
    return out;
  }

  /**
   * Newest first, keyset-paginated on seq (never OFFSET). Returns up to limit + 1 rows.
   * ORDER BY names secrets.seq: a bare "seq" would mean the seq::text output column, which
   * sorts "9" above "10" and cannot use the index (a full scan and sort on every page).
   */
  async listPage(
    q: Queryable,
    opts: {
      environment: string;
      limit: number;
      beforeSeq?: string | undefined;
      prefix?: string | undefined;
      active?: boolean | undefined;
      /** Only the names the caller may see. */
      visible: Visibility;
    },
  ): Promise<SecretRow[]> {
    const params: unknown[] = [opts.limit + 1, opts.environment];
    const where: string[] = ['secrets.environment = $2'];
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
    const visible = visibilitySql(opts.visible, 'key', params);
    if (visible) where.push(visible);
    return q.query<SecretRow>(
      `SELECT ${LISTED_COLUMNS} FROM secrets ${LAST_READ_JOIN}
       WHERE ${where.join(' AND ')}
       ORDER BY secrets.seq DESC LIMIT $1`,
      params,
    );
  }
}

/** One repository for a caller that builds it alone (tests, the CLI's rewrap). */
export function createSecretsRepository(): SecretsRepository {
  return new SecretsRepository();
}
