import type { SealedValue } from '../crypto/envelope.js';
import type { Queryable } from '../db/database.js';
import { type CryptoColumns, cryptoColumns, sealedParams } from '../db/sealed-columns.js';

/** SQL for key rotation and the key canaries. Every method takes the Queryable to run on. */

export interface RewrapCandidate extends CryptoColumns {
  secret_id: string;
  version: number;
  key: string;
}

export interface Rewrapped {
  secretId: string;
  version: number;
  /** The kid the row had when it was read: the update applies only if it still has it. */
  fromKid: string;
  sealed: SealedValue;
}

const hex = (b: Buffer) => b.toString('hex');

/** The SQL of key rotation: rows still under an older KEK, and their re-wrapped data keys. */
export class KekRepository {
  /**
   * The next rows not under `activeKid`, in (secret_id, version) order after the keyset
   * position. A plain read: it takes no locks, so it never waits for or blocks a writer.
   */
  async nextToRewrap(
    q: Queryable,
    activeKid: string,
    after: { secretId: string; version: number },
    limit: number,
  ): Promise<RewrapCandidate[]> {
    return q.query<RewrapCandidate>(
      `SELECT v.secret_id, v.version, s.key, ${cryptoColumns('v')}
       FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
       WHERE v.kid <> $1 AND (v.secret_id, v.version) > ($2::uuid, $3::int)
       ORDER BY v.secret_id, v.version
       LIMIT $4`,
      [activeKid, after.secretId, after.version, limit],
    );
  }

  /**
   * Stores re-wrapped data keys for a batch in one statement (one short transaction) and
   * returns the versions it changed.
   * A row is only changed if it still has the kid it was read with, so a concurrent
   * rewrap never clobbers another, and a row pruned or purged meanwhile is simply gone.
   * Rows locked by someone else (a purge deleting a secret's versions, a prune) are
   * skipped, not waited for: the rewrap never waits, so it can never be half of a
   * deadlock; skipped rows are picked up by the next pass. Byte arrays travel as hex
   * text so the same SQL runs on pg and PGlite.
   */
  async storeRewrapped(q: Queryable, rows: Rewrapped[]): Promise<{ secretId: string; version: number }[]> {
    if (rows.length === 0) return [];
    return q.query<{ secretId: string; version: number }>(
      `WITH u AS (
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
           AS t(secret_id, version, from_kid, kid, wrapped_dek, dek_iv, dek_tag)
       ), locked AS (
         SELECT v.secret_id, v.version FROM secret_versions v
         JOIN u ON v.secret_id = u.secret_id AND v.version = u.version AND v.kid = u.from_kid
         FOR UPDATE OF v SKIP LOCKED
       ), upd AS (
         UPDATE secret_versions v
         SET kid = u.kid, wrapped_dek = decode(u.wrapped_dek, 'hex'),
             dek_iv = decode(u.dek_iv, 'hex'), dek_tag = decode(u.dek_tag, 'hex')
         FROM u JOIN locked l ON l.secret_id = u.secret_id AND l.version = u.version
         WHERE v.secret_id = u.secret_id AND v.version = u.version AND v.kid = u.from_kid
         RETURNING v.secret_id, v.version
       )
       SELECT secret_id::text AS "secretId", version FROM upd`,
      [rows.map((r) => r.secretId), rows.map((r) => r.version), ...rewrapColumns(rows)],
    );
  }

  /**
   * Webhook signing secrets not under `activeKid` (sealed like values, identity
   * (subscription id, 'webhook', generation): src/events/webhooks.ts), after the keyset
   * position. A plain read, like nextToRewrap.
   */
  async nextWebhookSecretsToRewrap(
    q: Queryable,
    activeKid: string,
    after: { subscriptionId: string; generation: number },
    limit: number,
  ): Promise<(CryptoColumns & { subscription_id: string; generation: number })[]> {
    return q.query<CryptoColumns & { subscription_id: string; generation: number }>(
      `SELECT subscription_id, generation, ${cryptoColumns()} FROM webhook_secrets
       WHERE kid <> $1 AND (subscription_id, generation) > ($2::uuid, $3::int)
       ORDER BY subscription_id, generation
       LIMIT $4`,
      [activeKid, after.subscriptionId, after.generation, limit],
    );
  }

  /**
   * Stores re-wrapped webhook signing secrets in one statement, each only if it still has
   * the kid it was read with (a concurrent rewrap or a deleted subscription leaves it be).
   * Returns how many it changed.
   */
  async storeRewrappedWebhookSecrets(
    q: Queryable,
    rows: { subscriptionId: string; generation: number; fromKid: string; sealed: SealedValue }[],
  ): Promise<number> {
    if (rows.length === 0) return 0;
    const done = await q.query(
      `UPDATE webhook_secrets w
       SET kid = u.kid, wrapped_dek = decode(u.wrapped_dek, 'hex'),
           dek_iv = decode(u.dek_iv, 'hex'), dek_tag = decode(u.dek_tag, 'hex')
       FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS u(subscription_id, generation, from_kid, kid, wrapped_dek, dek_iv, dek_tag)
       WHERE w.subscription_id = u.subscription_id AND w.generation = u.generation AND w.kid = u.from_kid
       RETURNING 1`,
      [rows.map((r) => r.subscriptionId), rows.map((r) => r.generation), ...rewrapColumns(rows)],
    );
    return done.length;
  }

  /** Stores a kid's canary unless it has one already (the first start wins). */
  async insertCanary(q: Queryable, sealed: SealedValue): Promise<void> {
    await q.query(
      `INSERT INTO crypto_canaries (${cryptoColumns()}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (kid) DO NOTHING`,
      sealedParams(sealed),
    );
  }

  async canaries(q: Queryable): Promise<CryptoColumns[]> {
    return q.query<CryptoColumns>(`SELECT ${cryptoColumns()} FROM crypto_canaries`);
  }

  /** Whether any stored version (or webhook signing secret) is still sealed under `kid`. */
  async kidInUse(q: Queryable, kid: string): Promise<boolean> {
    const rows = await q.query(
      `SELECT 1 FROM secret_versions WHERE kid = $1
       UNION ALL SELECT 1 FROM webhook_secrets WHERE kid = $1 LIMIT 1`,
      [kid],
    );
    return rows.length > 0;
  }

  /** Sealed rows per kid: secret versions and webhook signing secrets. */
  async rowsPerKid(q: Queryable): Promise<{ kid: string; rows: number }[]> {
    return q.query<{ kid: string; rows: number }>(
      `SELECT kid, count(*)::int AS rows FROM (
         SELECT kid FROM secret_versions UNION ALL SELECT kid FROM webhook_secrets
       ) k GROUP BY kid ORDER BY kid`,
    );
  }
}

/** The unnest parameters every re-wrapped row shares: the kid it was read with and its new sealed key. */
function rewrapColumns(rows: { fromKid: string; sealed: SealedValue }[]) {
  return [
    rows.map((r) => r.fromKid),
    rows.map((r) => r.sealed.kid),
    rows.map((r) => hex(r.sealed.wrappedDek)),
    rows.map((r) => hex(r.sealed.dekIv)),
    rows.map((r) => hex(r.sealed.dekTag)),
  ];
}
