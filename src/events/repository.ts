import type { SealedValue } from '../crypto/envelope.js';
import type { Queryable } from '../db/database.js';
import { columnsOf, newestFirst } from '../db/rows.js';
import { type CryptoColumns, cryptoColumns, sealedParams } from '../db/sealed-columns.js';
import {
  EVERY_RUNNING,
  heldBackSql,
  horizonCte,
  type SchemaWriters,
  schemaWriters,
  schemaWritersColumns,
} from '../db/xid-horizon.js';

/** SQL only for change events, webhook subscriptions and their deliveries. */

export interface SubscriptionRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  key_prefixes: string[];
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: number;
  failing_since: Date | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  seq: string;
  /** When the previous signing secret stops signing (a rotation's grace period), if one still does. */
  previous_retires_at: Date | null;
}

export interface EventRow {
  seq: string;
  id: string;
  type: string;
  at: Date;
  key: string | null;
  version: number | null;
  etag: string | null;
  actor: string;
  audit_id: string | null;
  subscription_id: string | null;
  xid: string;
  environment: string;
}

export interface ClaimedDelivery {
  id: string;
  subscription_id: string;
  attempts: number;
  url: string;
  /**
   * The subscription's signing secrets that sign now, as generations and retirement times:
   * the same tag, the same secrets (the dispatcher keeps them opened between claims).
   */
  secrets_tag: string;
  event: EventRow;
}

export interface DeliveryLogRow {
  id: string;
  event_id: string;
  event_type: string;
  key: string | null;
  status: string;
  attempts: number;
  next_at: Date;
  created_at: Date;
  done_at: Date | null;
  response_status: number | null;
  latency_ms: number | null;
  error: string | null;
}

const SUB_COLUMNS = `s.id, s.url, s.description, s.event_types, s.key_prefixes, s.enabled, s.disabled_reason,
  s.consecutive_failures, s.failing_since, s.created_by, s.created_at, s.updated_at, s.seq::text AS seq,
  (SELECT max(w.retires_at) FROM webhook_secrets w
    WHERE w.subscription_id = s.id AND w.retires_at > now()) AS previous_retires_at`;
/**
 * The tag of the generations that sign for subscription `s` (the dispatcher opens its
 * secrets again only when the tag changes): claims and fan-out batches both carry it.
 */
const SECRETS_TAG = `(SELECT string_agg(w.generation::text || ':' || COALESCE(w.retires_at::text, ''), ','
                                ORDER BY w.generation DESC)
                FROM webhook_secrets w
                WHERE w.subscription_id = s.id AND (w.retires_at IS NULL OR w.retires_at > now()))`;
export const EVENT_COLUMNS = `e.seq::text AS seq, e.id, e.type, e.at, e.key, e.version, e.etag, e.actor,
  e.audit_id::text AS audit_id, e.subscription_id, e.xid::text AS xid, e.environment`;
const CRYPTO = cryptoColumns();

/**
 * The subscription's failure run after a batch of outcomes, as one CTE `s` over a CTE `per`
 * (sub, failed, any_ok) of the statement it is part of: the recording of claimed deliveries
 * and the settling of a fan-out batch both end with it. A batch with a success and no
 * failure resets the run; an all-success batch of a subscription with no failure run
 * changes nothing (no row version for it, one per batch otherwise).
 */
const FAILURE_RUN_UPDATE = `s AS (
         UPDATE webhook_subscriptions w
         SET consecutive_failures = CASE WHEN per.failed = 0 THEN 0
                                         WHEN per.any_ok THEN per.failed
                                         ELSE w.consecutive_failures + per.failed END,
             failing_since = CASE WHEN per.failed = 0 THEN NULL ELSE COALESCE(w.failing_since, now()) END
         FROM per WHERE w.id = per.sub
           AND (per.failed > 0 OR w.consecutive_failures <> 0 OR w.failing_since IS NOT NULL)
       )`;

/** One attempt's outcome, as `recordAttempts` records it (`retryMs`: when to try again, or null). */
export interface AttemptRecord {
  id: string;
  attempt: number;
  ok: boolean;
  status: number | null;
  latencyMs: number;
  error: string | null;
  retryMs: number | null;
}

export interface NewSubscription {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  keyPrefixes: string[];
  createdBy: string;
}

export interface SubscriptionPatch {
  url?: string | undefined;
  description?: string | null | undefined;
  eventTypes?: string[] | undefined;
  keyPrefixes?: string[] | undefined;
  enabled?: boolean | undefined;
}

/** A match of a fan-out batch read under the cursor's lease (`readFanOut`). */
export interface FanOutMatch {
  subscription_id: string;
  url: string;
  secrets_tag: string;
  /**
   * Sent now, by the batch itself: the subscription is enabled, has no due delivery waiting
   * for a claim, and no earlier delivery of the event's key is pending.
   */
  fresh: boolean;
  event: EventRow;
}

/** What became of a match of the batch (`settleFanOut`). */
export type FanOutOutcome =
  | {
      state: 'delivered' | 'retry' | 'failed';
      status: number | null;
      latencyMs: number;
      error: string | null;
      retryMs: number | null;
    }
  /** Its request is still in flight: inserted pending, leased to this instance, attempt 1. */
  | { state: 'flight' }
  /** Not sent: inserted pending for a claim (attempt 0). */
  | { state: 'queued' };

export class EventsRepository {
  async insertSubscription(q: Queryable, s: NewSubscription, secret: SealedValue): Promise<SubscriptionRow> {
    await q.query(
      `WITH s AS (
         INSERT INTO webhook_subscriptions (id, url, description, event_types, key_prefixes, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
       )
       INSERT INTO webhook_secrets (subscription_id, generation, ${CRYPTO})
       SELECT s.id, 1, $7, $8, $9, $10, $11, $12, $13, $14 FROM s`,
      [s.id, s.url, s.description, s.eventTypes, s.keyPrefixes, s.createdBy, ...sealedParams(secret)],
    );
    return (await this.findSubscription(q, s.id))!;
  }

  async findSubscription(q: Queryable, id: string): Promise<SubscriptionRow | undefined> {
    const rows = await q.query<SubscriptionRow>(
      `SELECT ${SUB_COLUMNS} FROM webhook_subscriptions s WHERE s.id = $1`,
      [id],
    );
    return rows[0];
  }

  /** Newest first, keyset on seq; up to limit + 1 rows. */
  listSubscriptions(q: Queryable, page: { limit: number; beforeSeq?: string | undefined }) {
    return newestFirst<SubscriptionRow>(
      q,
      `SELECT ${SUB_COLUMNS} FROM webhook_subscriptions s`,
      's.seq',
      page,
    );
  }

  /** Applies a patch under the row lock; re-enabling clears the failure run. */
  async updateSubscription(
    q: Queryable,
    id: string,
    p: SubscriptionPatch,
  ): Promise<SubscriptionRow | undefined> {
    const params: unknown[] = [id];
    const sets = ['updated_at = now()'];
    const set = (col: string, v: unknown) => {
      params.push(v);
      sets.push(`${col} = $${params.length}`);
    };
    if (p.url !== undefined) set('url', p.url);
    if (p.description !== undefined) set('description', p.description);
    if (p.eventTypes !== undefined) set('event_types', p.eventTypes);
    if (p.keyPrefixes !== undefined) set('key_prefixes', p.keyPrefixes);
    if (p.enabled !== undefined) {
      set('enabled', p.enabled);
      if (p.enabled) sets.push('disabled_reason = NULL', 'consecutive_failures = 0', 'failing_since = NULL');
      else sets.push(`disabled_reason = 'disabled by an admin'`);
    }
    const rows = await q.query<{ id: string }>(
      `UPDATE webhook_subscriptions SET ${sets.join(', ')} WHERE id = $1 RETURNING id`,
      params,
    );
    return rows[0] ? this.findSubscription(q, id) : undefined;
  }

  async deleteSubscription(q: Queryable, id: string): Promise<boolean> {
    const rows = await q.query(`DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING id`, [id]);
    return rows.length === 1;
  }

  /**
   * Locks the subscription's row (FOR UPDATE) until the transaction ends, so that changes
   * that number its secret's generations (rotation) run one at a time; false when there is
   * no such subscription.
   */
  async lockSubscription(q: Queryable, id: string): Promise<boolean> {
    const rows = await q.query(`SELECT id FROM webhook_subscriptions WHERE id = $1 FOR UPDATE`, [id]);
    return rows.length === 1;
  }

  /** The secret's sealed generations that still sign, newest first. */
  async signingSecrets(q: Queryable, id: string): Promise<(CryptoColumns & { generation: number })[]> {
    return q.query<CryptoColumns & { generation: number }>(
      `SELECT generation, ${CRYPTO} FROM webhook_secrets
       WHERE subscription_id = $1 AND (retires_at IS NULL OR retires_at > now())
       ORDER BY generation DESC`,
      [id],
      { name: 'webhook_signing_secrets' },
    );
  }

  /** Rotation: the current secret signs on until now + graceSeconds; the new one signs from now. */
  async nextGeneration(q: Queryable, id: string): Promise<number> {
    const rows = await q.query<{ g: number }>(
      `SELECT COALESCE(max(generation), 0) + 1 AS g FROM webhook_secrets WHERE subscription_id = $1`,
      [id],
    );
    return rows[0]!.g;
  }

  async rotate(q: Queryable, id: string, generation: number, sealed: SealedValue, graceSeconds: number) {
    await q.query(
      `WITH old AS (
         UPDATE webhook_secrets SET retires_at = now() + $11 * interval '1 second'
         WHERE subscription_id = $1 AND retires_at IS NULL
       )
       INSERT INTO webhook_secrets (subscription_id, generation, ${CRYPTO})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [id, generation, ...sealedParams(sealed), graceSeconds],
    );
  }

  /**
   * The delivery log, newest first, each with its latest attempt's outcome (kept on the
   * delivery's row; webhook_attempts holds the history of deliveries that ever failed).
   */
  async deliveries(q: Queryable, id: string, f: { limit: number; beforeId?: string | undefined }) {
    const params: unknown[] = [id, f.limit + 1];
    let where = '';
    if (f.beforeId !== undefined) {
      params.push(f.beforeId);
      where = 'AND d.id < $3::bigint';
    }
    return q.query<DeliveryLogRow>(
      `SELECT d.id::text AS id, e.id AS event_id, e.type AS event_type, e.key, d.status, d.attempts,
                d.next_at, d.created_at, d.done_at, d.response_status, d.latency_ms, d.error
       FROM webhook_deliveries d JOIN change_events e ON e.seq = d.event_seq
       WHERE d.subscription_id = $1 ${where}
       ORDER BY d.id DESC LIMIT $2`,
      params,
    );
  }

  /** Queues the delivery's event again for its subscription (same event, so the same webhook-id). */
  async redeliver(q: Queryable, subscriptionId: string, deliveryId: string): Promise<string | undefined> {
    const rows = await q.query<{ id: string }>(
      `INSERT INTO webhook_deliveries (subscription_id, event_seq, key)
       SELECT subscription_id, event_seq, key FROM webhook_deliveries
       WHERE id = $2::bigint AND subscription_id = $1
       RETURNING id::text AS id`,
      [subscriptionId, deliveryId],
    );
    return rows[0]?.id;
  }

  /**
   * Claims due deliveries: for each enabled subscription, up to `perSub` less its
   * deliveries in flight here (`busy`, by subscription), at most `limit` in all, in event
   * order (so one subscription never has more than `perSub` in flight here). A key's
   * deliveries are claimed only in order: one is claimed only if every earlier pending
   * delivery of its (subscription, key) is claimed with it, so a batch may hold several of
   * one key (the dispatcher sends those one after another) but never one whose predecessor
   * waits for a retry or is in flight elsewhere. SKIP LOCKED lets instances claim side by side (a row another claim holds
   * is left out, and so then is every later one of its key); the lease (and the attempt
   * number) marks the claim until the result is recorded. `anySubscription` says whether
   * any subscription is enabled at all (the dispatcher idles longer when none is).
   */
  async claim(
    q: Queryable,
    f: { busy: ReadonlyMap<string, number>; perSub: number; limit: number; leaseMs: number },
  ): Promise<{ claimed: ClaimedDelivery[]; anySubscription: boolean }> {
    const rows = await q.query<
      EventRow & {
        delivery_id: string | null;
        delivery_subscription: string;
        attempts: number;
        url: string;
        secrets_tag: string;
        any_sub: boolean;
      }
    >(
      `WITH subs AS (
           SELECT s.id, s.url, s.room, ${SECRETS_TAG} AS secrets_tag
           FROM (SELECT s.*, $2::int - COALESCE((SELECT b.n FROM unnest($1::uuid[], $5::int[]) AS b(id, n)
                                                 WHERE b.id = s.id), 0) AS room
                 FROM webhook_subscriptions s WHERE s.enabled) s
           WHERE s.room > 0
       ), cand AS (
         SELECT x.* FROM subs CROSS JOIN LATERAL (
           SELECT d.id, d.subscription_id, d.key, d.event_seq FROM webhook_deliveries d
           WHERE d.subscription_id = subs.id AND d.status = 'pending' AND d.next_at <= now()
             AND (d.lease_until IS NULL OR d.lease_until < now())
           ORDER BY d.event_seq, d.id
           LIMIT subs.room
           FOR UPDATE OF d SKIP LOCKED
         ) x
       ), due AS (
         SELECT c.id FROM cand c
         WHERE NOT EXISTS (
           SELECT 1 FROM webhook_deliveries p
           WHERE p.subscription_id = c.subscription_id AND p.status = 'pending' AND p.key = c.key
             AND (p.event_seq, p.id) < (c.event_seq, c.id)
             AND NOT EXISTS (SELECT 1 FROM cand c2 WHERE c2.id = p.id))
         ORDER BY c.event_seq, c.id
         LIMIT $3
       ), claimed AS (
         UPDATE webhook_deliveries d
         SET lease_until = now() + $4 * interval '1 millisecond', attempts = d.attempts + 1
         FROM due WHERE d.id = due.id
         RETURNING d.id, d.subscription_id, d.event_seq, d.attempts
       ), got AS (
         SELECT c.id::text AS delivery_id, c.subscription_id AS delivery_subscription, c.attempts, s.url,
                  COALESCE(s.secrets_tag, '') AS secrets_tag, ${EVENT_COLUMNS}
         FROM claimed c JOIN subs s ON s.id = c.subscription_id JOIN change_events e ON e.seq = c.event_seq
       )
       SELECT got.*, h.any_sub
       FROM (SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE enabled) AS any_sub) h
       LEFT JOIN got ON true
       ORDER BY got.seq::bigint`,
      [[...f.busy.keys()], f.perSub, f.limit, f.leaseMs, [...f.busy.values()]],
      { name: 'webhook_claim' },
    );
    const anySubscription = rows[0]?.any_sub ?? false;
    const claimed: ClaimedDelivery[] = [];
    for (const {
      delivery_id,
      delivery_subscription,
      attempts,
      url,
      secrets_tag,
      any_sub: _,
      ...event
    } of rows)
      if (delivery_id !== null)
        claimed.push({
          id: delivery_id,
          subscription_id: delivery_subscription,
          attempts,
          url,
          secrets_tag,
          event,
        });
    return { claimed, anySubscription };
  }

  /**
   * Gives claims back unattempted (a later delivery of a key whose earlier one just
   * failed in the same batch): pending as before, the claim's attempt not counted.
   */
  async release(q: Queryable, rs: readonly { id: string; attempt: number }[]): Promise<void> {
    if (rs.length === 0) return;
    await q.query(
      `UPDATE webhook_deliveries w SET lease_until = NULL, attempts = w.attempts - 1
       FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
       WHERE w.id = r.id AND w.attempts = r.attempt AND w.status = 'pending'`,
      [rs.map((r) => r.id), rs.map((r) => r.attempt)],
      { name: 'webhook_release' },
    );
  }

  /**
   * Records attempts (a subscription's batch, in one statement). The outcome goes on the
   * delivery's row (the log shows it); webhook_attempts keeps a row per attempt only for
   * deliveries that failed at least once (a first-try success is its delivery row, one
   * row less for almost every event). Success: delivered, and
   * the subscription's failure run ends. Failure: due again after `retryMs` (failed for
   * good when null) and the run grows by the batch's failures. An attempt applies only
   * while its claim is still ours (same attempt number). Returns the subscription ids
   * whose run grew.
   */
  async recordAttempts(q: Queryable, rs: readonly AttemptRecord[]): Promise<string[]> {
    const rows = await q.query<{ subscription_id: string; failed: number }>(
      `WITH r AS (
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::boolean[], $4::int[], $5::int[], $6::text[], $7::int[])
           AS t(id, attempt, ok, status, latency_ms, error, retry_ms)
       ), d AS (
         UPDATE webhook_deliveries w
         SET status = CASE WHEN r.ok THEN 'delivered' WHEN r.retry_ms IS NULL THEN 'failed' ELSE 'pending' END,
             lease_until = NULL,
             done_at = CASE WHEN r.ok OR r.retry_ms IS NULL THEN now() END,
             next_at = CASE WHEN r.ok OR r.retry_ms IS NULL THEN w.next_at
                         ELSE now() + r.retry_ms * interval '1 millisecond' END,
               response_status = r.status, latency_ms = r.latency_ms, error = r.error
         FROM r WHERE w.id = r.id AND w.attempts = r.attempt AND w.status = 'pending'
         RETURNING w.id, w.subscription_id, r.attempt, r.ok, r.status, r.latency_ms, r.error
       ), a AS (
         INSERT INTO webhook_attempts (delivery_id, attempt, response_status, latency_ms, error)
           SELECT id, attempt, status, latency_ms, error FROM d WHERE NOT d.ok OR d.attempt > 1
       ), per AS (
         SELECT subscription_id AS sub, count(*) FILTER (WHERE NOT ok)::int AS failed,
                bool_or(ok) AS any_ok FROM d GROUP BY subscription_id
       ), ${FAILURE_RUN_UPDATE}
       SELECT sub AS subscription_id, failed FROM per`,
      columnsOf(rs, 'id', 'attempt', 'ok', 'status', 'latencyMs', 'error', 'retryMs'),
      { name: 'webhook_record' },
    );
    return rows.filter((r) => r.failed > 0).map((r) => r.subscription_id);
  }

  /**
   * Disables a subscription whose failure run is long enough (at least minFailures
   * attempts, begun at least disableAfterMs ago) and writes its webhook.disabled event in
   * the same statement. The WHERE is re-checked under the row lock, so of several
   * instances only one disables it and one event is written. Returns whether it did.
   */
  async disableIfFailing(
    q: Queryable,
    id: string,
    minFailures: number,
    disableAfterMs: number,
  ): Promise<boolean> {
    const rows = await q.query(
      `WITH w AS (
         UPDATE webhook_subscriptions
         SET enabled = false, updated_at = now(),
             disabled_reason = 'disabled after ' || consecutive_failures || ' failed attempts in a row since '
               || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
         WHERE id = $1 AND enabled AND consecutive_failures >= $2
           AND failing_since <= now() - $3 * interval '1 millisecond'
         RETURNING id
       ), ev AS (
         INSERT INTO change_events (type, actor, subscription_id)
         SELECT 'webhook.disabled', 'system:webhooks', w.id FROM w
       )
       SELECT id FROM w`,
      [id, minFailures, disableAfterMs],
    );
    return rows.length === 1;
  }

  /**
   * secret.expiring, once per secret and expiry: the notice's primary key lets exactly
   * one instance insert it, and only the inserted notices become events.
   */
  async noteExpiring(q: Queryable, beforeSeconds: number): Promise<number> {
    const rows = await q.query<{ n: number }>(
      `WITH due AS (
         SELECT id, key, environment, current_version, revision, expires_at FROM secrets
         WHERE is_active AND expires_at > now() AND expires_at <= now() + $1 * interval '1 second'
       ), noted AS (
         INSERT INTO expiry_notices (secret_id, expires_at)
         SELECT id, expires_at FROM due ORDER BY key
         ON CONFLICT DO NOTHING
         RETURNING secret_id, expires_at
       ), ev AS (
         INSERT INTO change_events (type, key, version, etag, actor, environment)
         SELECT 'secret.expiring', due.key, due.current_version,
                '"' || due.id::text || '.' || due.revision::text || '"', 'system:expiry', due.environment
         FROM noted JOIN due ON due.id = noted.secret_id AND due.expires_at = noted.expires_at
         ORDER BY due.key
         RETURNING 1
       )
       SELECT count(*)::int AS n FROM ev`,
      [beforeSeconds],
    );
    return rows[0]?.n ?? 0;
  }

  /** Drops events older than the retention that no delivery still waits for, and old notices. */
  async prune(q: Queryable, retentionDays: number): Promise<void> {
    await q.query(
      // The bound comes from the oldest event still kept, read in seq order from the start
      // (events are inserted in time order; no index on the time).
      `DELETE FROM change_events e
       WHERE e.seq < COALESCE(
           (SELECT k.seq FROM change_events k WHERE k.at >= now() - $1 * interval '1 day' ORDER BY k.seq LIMIT 1),
           (SELECT max(k.seq) + 1 FROM change_events k))
         AND e.at < now() - $1 * interval '1 day'
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = e.seq AND d.status = 'pending')
         -- and none the fan-out has not passed yet
         AND (e.xid, e.seq) <= (SELECT f.after_xid, f.after_seq FROM event_fanout f)`,
      [retentionDays],
    );
    await q.query(`DELETE FROM expiry_notices WHERE expires_at < now() - interval '1 day'`);
    // Deliveries a fan-out queued for a subscription deleted while it ran (there is no
    // foreign key: migrations/011_webhook_delivery_cost.sql); never claimed, only in the way here.
    await q.query(
      `DELETE FROM webhook_deliveries d WHERE d.status = 'pending'
         AND NOT EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = d.subscription_id)`,
    );
  }

  /**
   * Events after a stream position, in order, released only below the horizon of this
   * schema's transactions (src/db/xid-horizon.ts): the oldest running one that may still add
   * an event with a smaller xid, so a position never skips one. Position: (xid, seq) of the
   * last event sent. The events are read in the horizon's second statement, with its snapshot.
   */
  async eventsAfter(
    q: Queryable,
    after: { xid: string; seq: string },
    limit: number,
  ): Promise<{ rows: EventRow[]; horizon: string }> {
    const ours = await schemaWriters(q);
    const rows = await q.query<EventRow & { horizon: string }>(
      `WITH ${horizonCte('$4', '$5')}
       SELECT ${EVENT_COLUMNS}, h.x::text AS horizon FROM h
       LEFT JOIN change_events e ON (e.xid, e.seq) > ($1::xid8, $2::bigint) AND e.xid < h.x
       ORDER BY e.xid, e.seq LIMIT greatest($3::int, 1)`,
      [after.xid, after.seq, limit, ours.xmax0, ours.xids],
      { name: 'events_after' },
    );
    const horizon = rows[0]!.horizon;
    return { rows: limit > 0 ? rows.filter((r) => r.seq !== null) : [], horizon };
  }
  /**
   * One fan-out batch that only queues, on a transaction of its own (`tx`; tests and callers
   * that send nothing): the events after the cursor that are final (`eventsAfter`, the live
   * stream's release horizon: an event committed later with a smaller position is never
   * skipped), queued for every subscription that matches them in one INSERT ... SELECT, the
   * cursor moved past them in the same statement. The cursor row is locked FOR UPDATE SKIP
   * LOCKED and taken only while no lease holds it (`takeFanOut`); moving it ends an expired
   * lease, so its holder's late `settleFanOut` changes nothing. A subscription matches an
   * event of its types and key prefixes written while it was enabled (`fan_from`,
   * `fan_until`: the sequence's last value when it was created or enabled, and disabled;
   * migrations/012), never one about itself. With no subscription at all, the cursor moves
   * to the horizon without reading the events. Returns the number of events read, or
   * undefined when another instance holds the cursor.
   */
  async fanOut(tx: Queryable, limit: number): Promise<{ read: number } | undefined> {
    // The cursor, locked, read with the horizon's statement 1 (`eventsAfter`).
    let [cur] = await tx.query<{ xid: string; seq: string; subs: boolean } & Partial<SchemaWriters>>(
      `SELECT after_xid::text AS xid, after_seq::text AS seq,
              EXISTS (SELECT 1 FROM webhook_subscriptions) AS subs, ${schemaWritersColumns}
       FROM event_fanout WHERE lease_until IS NULL OR lease_until < now() FOR UPDATE SKIP LOCKED`,
      [],
      { name: 'events_fanout_cursor' },
    );
    if (!cur) {
      // No row (a fresh or emptied table), or another instance holds it.
      [cur] = await tx.query<{ xid: string; seq: string; subs: boolean }>(
        `INSERT INTO event_fanout (after_xid, after_seq) VALUES ('0', 0) ON CONFLICT DO NOTHING
         RETURNING after_xid::text AS xid, after_seq::text AS seq,
                   EXISTS (SELECT 1 FROM webhook_subscriptions) AS subs`,
      );
      if (!cur) return undefined;
    }
    if (!cur.subs) {
      const { horizon } = await this.eventsAfter(tx, cur, 0);
      await this.skipFanOut(tx, horizon, null);
      return { read: 0 };
    }
    const ours: SchemaWriters =
      cur.xmax0 !== undefined && cur.xids !== undefined
        ? { xmax0: cur.xmax0, xids: cur.xids }
        : await schemaWriters(tx);
    // Statement 2: the events below the horizon (as `eventsAfter` reads them), their
    // deliveries inserted, the cursor moved past them, in one statement.
    const out = await tx.query<{ read: number }>(
      `WITH ${horizonCte('$4', '$5')},
       ${FANOUT_EVENTS}, ${FANOUT_MATCHES}, queued AS (
         INSERT INTO webhook_deliveries (subscription_id, event_seq, key)
         SELECT m.sub, m.seq, m.key FROM m ORDER BY m.seq, m.sub_seq
       ), cur AS (
         UPDATE event_fanout SET after_xid = last.xid_n, after_seq = last.seq_n,
                                 lease_token = NULL, lease_until = NULL FROM last
       )
       SELECT count(*)::int AS read FROM e`,
      [cur.xid, cur.seq, limit, ours.xmax0, ours.xids],
      { name: 'events_fanout' },
    );
    return { read: out[0]?.read ?? 0 };
  }

  /**
   * No subscription exists: the cursor moves to the horizon without reading the events, if
   * still none exists once the horizon is read (every event below it was handed its sequence
   * number before then, so a subscription created later starts after it, `fan_from`, and
   * none of these events is one it would get). With `token`: only while that lease holds it,
   * and the lease ends.
   */
  async skipFanOut(q: Queryable, horizon: string, token: string | null): Promise<void> {
    await q.query(
      `UPDATE event_fanout
       SET after_xid = CASE WHEN after_xid < $1::xid8 AND NOT EXISTS (SELECT 1 FROM webhook_subscriptions)
                            THEN $1::xid8 ELSE after_xid END,
           after_seq = CASE WHEN after_xid < $1::xid8 AND NOT EXISTS (SELECT 1 FROM webhook_subscriptions)
                            THEN 0 ELSE after_seq END,
           lease_token = NULL, lease_until = NULL
       WHERE $2::uuid IS NULL OR lease_token = $2::uuid`,
      [horizon, token],
      { name: 'events_fanout_skip' },
    );
  }

  /**
   * Takes the fan-out cursor for a batch that sends (src/events/dispatcher.ts): a lease
   * (`token`, until now + leaseMs) instead of a transaction held across the requests, which
   * would hold back the live stream's horizon. Only while no other lease holds it and no
   * transaction has it locked (`fanOut`). Carries the horizon's statement 1 when `readsLocks`
   * (src/db/xid-horizon.ts `HorizonProbe`); otherwise its result is EVERY_RUNNING. Undefined
   * when another instance holds the cursor.
   */
  async takeFanOut(
    q: Queryable,
    token: string,
    leaseMs: number,
    readsLocks = true,
  ): Promise<({ xid: string; seq: string; subs: boolean } & SchemaWriters) | undefined> {
    const take = () =>
      q.query<{ xid: string; seq: string; subs: boolean } & SchemaWriters>(
        `UPDATE event_fanout f SET lease_token = $1::uuid, lease_until = now() + $2 * interval '1 millisecond'
         WHERE f.id IN (SELECT id FROM event_fanout WHERE lease_until IS NULL OR lease_until < now()
                        FOR UPDATE SKIP LOCKED)
         RETURNING after_xid::text AS xid, after_seq::text AS seq,
                   EXISTS (SELECT 1 FROM webhook_subscriptions) AS subs${readsLocks ? `, ${schemaWritersColumns}` : ''}`,
        [token, leaseMs],
        { name: readsLocks ? 'events_fanout_take' : 'events_fanout_take_cheap' },
      );
    let [cur] = await take();
    if (!cur) {
      // No row (a fresh or emptied table)?
      const made = await q.query(
        `INSERT INTO event_fanout (after_xid, after_seq) VALUES ('0', 0) ON CONFLICT DO NOTHING RETURNING 1`,
      );
      if (made.length === 1) [cur] = await take();
    }
    return cur && (readsLocks ? cur : { ...cur, ...EVERY_RUNNING });
  }

  /**
   * The batch of a lease (`takeFanOut`'s cursor and horizon statement 1): the events below
   * the horizon, up to `limit`, with every subscription that matches each, in event order,
   * and the position of the last one read. Nothing is written: the lease holder sends the
   * fresh ones and `settleFanOut` inserts them all.
   */
  async readFanOut(
    q: Queryable,
    cur: { xid: string; seq: string } & SchemaWriters,
    limit: number,
  ): Promise<{
    read: number;
    last: { xid: string; seq: string } | null;
    horizon: string;
    /** Whether the cheap horizon holds back an old committed event (src/db/xid-horizon.ts `HorizonProbe`). */
    heldBack: boolean;
    matches: FanOutMatch[];
  }> {
    const rows = await q.query<
      {
        read: number;
        horizon: string;
        held_back: boolean;
        last_xid: string | null;
        last_seq: string | null;
      } & Partial<EventRow> & {
          sub: string | null;
          url: string;
          secrets_tag: string;
          fresh: boolean;
        }
    >(
      `WITH ${horizonCte('$4', '$5')},
       ${FANOUT_EVENTS}, ${FANOUT_MATCHES}
       SELECT n.read, (SELECT x::text FROM h) AS horizon, ${heldBackSql('change_events', '$1', '$2')} AS held_back,
              last.xid_n::text AS last_xid, last.seq_n::text AS last_seq,
              m.sub, m.url, m.fresh, COALESCE(m.secrets_tag, '') AS secrets_tag,
              m.e_seq AS seq, m.id, m.type, m.at, m.e_key AS key, m.version, m.etag, m.actor, m.audit_id,
              m.subscription_id, m.xid, m.environment
       FROM (SELECT count(*)::int AS read FROM e) n LEFT JOIN last ON true LEFT JOIN m ON true
       ORDER BY m.seq, m.sub_seq`,
      [cur.xid, cur.seq, limit, cur.xmax0, cur.xids],
      { name: 'events_fanout_read' },
    );
    const first = rows[0]!;
    const matches: FanOutMatch[] = [];
    // Each event's fields named (not a rest copy of the row): this runs once per match.
    for (const r of rows)
      if (r.sub !== null)
        matches.push({
          subscription_id: r.sub,
          url: r.url,
          secrets_tag: r.secrets_tag,
          fresh: r.fresh,
          event: {
            seq: r.seq!,
            id: r.id!,
            type: r.type!,
            at: r.at!,
            key: r.key ?? null,
            version: r.version ?? null,
            etag: r.etag ?? null,
            actor: r.actor!,
            audit_id: r.audit_id ?? null,
            subscription_id: r.subscription_id ?? null,
            xid: r.xid!,
            environment: r.environment!,
          },
        });
    return {
      read: first.read,
      horizon: first.horizon,
      heldBack: first.held_back,
      last:
        first.last_xid !== null && first.last_seq !== null
          ? { xid: first.last_xid, seq: first.last_seq }
          : null,
      matches,
    };
  }

  /**
   * Ends a lease's batch in one statement, only if the lease (`token`) still holds the
   * cursor: every match inserted with its outcome (a delivered one is one row: its insert),
   * failed attempts also in webhook_attempts, the subscriptions' failure runs updated as
   * `recordAttempts` does, the cursor moved past the batch and the lease ended (`keep`: renewed
   * for leaseMs from now instead, for the lease's next batch, already sending). Returns
   * whether the lease held (if not, nothing was written: another instance took the cursor
   * after the lease ran out and sends the batch again), the deliveries inserted in flight
   * (as "id subscription event-seq"), and the subscriptions whose failure run grew.
   */
  async settleFanOut(
    q: Queryable,
    token: string,
    last: { xid: string; seq: string },
    items: readonly { sub: string; seq: string; key: string; outcome: FanOutOutcome }[],
    leaseMs: number,
    keep = false,
  ): Promise<{ held: boolean; flight: string[]; failing: string[] }> {
    const got = (o: FanOutOutcome) => (o.state === 'flight' || o.state === 'queued' ? undefined : o);
    const rows = await q.query<{ held: boolean; flight: string[] | null; failing: string[] | null }>(
      `WITH l AS (
         UPDATE event_fanout SET after_xid = $1::xid8, after_seq = $2::bigint,
                lease_token = CASE WHEN $13::boolean THEN lease_token END,
                lease_until = CASE WHEN $13::boolean THEN now() + $12 * interval '1 millisecond' END
         WHERE lease_token = $3::uuid RETURNING 1
       ), r AS (
         SELECT t.* FROM unnest($4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::int[], $9::int[], $10::text[],
                                $11::int[]) WITH ORDINALITY AS t(sub, seq, key, state, status, latency_ms, error, retry_ms, ord)
         WHERE EXISTS (SELECT 1 FROM l)
       ), ins AS (
         INSERT INTO webhook_deliveries (subscription_id, event_seq, key, status, attempts, next_at, lease_until,
                                         done_at, response_status, latency_ms, error)
         SELECT r.sub, r.seq, r.key,
                CASE r.state WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
                CASE WHEN r.state = 'queued' THEN 0 ELSE 1 END,
                CASE WHEN r.state = 'retry' THEN now() + r.retry_ms * interval '1 millisecond' ELSE now() END,
                CASE WHEN r.state = 'flight' THEN now() + $12 * interval '1 millisecond' END,
                CASE WHEN r.state IN ('delivered', 'failed') THEN now() END,
                r.status, r.latency_ms, r.error
         FROM r JOIN webhook_subscriptions s ON s.id = r.sub
         ORDER BY r.ord
         RETURNING id, subscription_id, event_seq, status, attempts, lease_until, response_status, latency_ms, error
       ), a AS (
         INSERT INTO webhook_attempts (delivery_id, attempt, response_status, latency_ms, error)
         SELECT id, 1, response_status, latency_ms, error FROM ins
         WHERE attempts = 1 AND lease_until IS NULL AND status <> 'delivered'
       ), per AS (
         SELECT sub, count(*) FILTER (WHERE state <> 'delivered')::int AS failed,
                bool_or(state = 'delivered') AS any_ok
         FROM r WHERE state IN ('delivered', 'retry', 'failed') GROUP BY sub
       ), ${FAILURE_RUN_UPDATE}
       SELECT EXISTS (SELECT 1 FROM l) AS held,
              ARRAY(SELECT id::text || ' ' || subscription_id::text || ' ' || event_seq::text
                    FROM ins WHERE lease_until IS NOT NULL) AS flight,
              ARRAY(SELECT sub::text FROM per WHERE failed > 0) AS failing`,
      [
        last.xid,
        last.seq,
        token,
        items.map((i) => i.sub),
        items.map((i) => i.seq),
        items.map((i) => i.key),
        items.map((i) => i.outcome.state),
        items.map((i) => got(i.outcome)?.status ?? null),
        items.map((i) => got(i.outcome)?.latencyMs ?? null),
        items.map((i) => got(i.outcome)?.error ?? null),
        items.map((i) => got(i.outcome)?.retryMs ?? null),
        leaseMs,
        keep,
      ],
      { name: 'events_fanout_settle' },
    );
    const row = rows[0]!;
    return { held: row.held, flight: row.flight ?? [], failing: row.failing ?? [] };
  }

  /** Gives a lease back without moving the cursor (its batch could not be sent or settled). */
  async releaseFanOut(q: Queryable, token: string): Promise<void> {
    await q.query(
      `UPDATE event_fanout SET lease_token = NULL, lease_until = NULL WHERE lease_token = $1::uuid`,
      [token],
    );
  }
}

/**
 * The fan-out's events: after the cursor ($1, $2), below the horizon `h`, up to $3, in
 * stream order, and the last of them.
 */
const FANOUT_EVENTS = `e AS (
         SELECT ${EVENT_COLUMNS}, e.seq AS seq_n, e.xid AS xid_n FROM h
         JOIN change_events e ON (e.xid, e.seq) > ($1::xid8, $2::bigint) AND e.xid < h.x
         ORDER BY e.xid, e.seq LIMIT $3::int
       ), last AS (
         SELECT xid_n, seq_n FROM e ORDER BY xid_n DESC, seq_n DESC LIMIT 1
       )`;

/**
 * Every (event, subscription) that matches, `fresh` when the batch may send it at once: the
 * subscription is enabled with no retry due and waiting for a claim (a receiver that is
 * failing gets its retries first, not a request for every new event beside them), and no
 * earlier delivery of the event's (subscription, key) is pending (in flight, waiting for a
 * retry or for a claim): per-key order. A delivery that is not fresh is queued and the
 * claim's order check holds it back behind the earlier one. (Queued deliveries never tried,
 * attempts 0, do not stop the subscription's fresh ones: most are a key's later event behind
 * one in flight, and other keys need not wait for them.)
 */
const FANOUT_MATCHES = `subs AS (
         SELECT s.*, s.enabled AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries b
                  WHERE b.subscription_id = s.id AND b.status = 'pending' AND b.next_at <= now()
                    AND b.attempts > 0 AND (b.lease_until IS NULL OR b.lease_until < now())) AS takes,
                ${SECRETS_TAG} AS secrets_tag
         FROM webhook_subscriptions s
       ), m AS (
         SELECT s.id AS sub, s.seq AS sub_seq, s.url, s.secrets_tag, e.seq_n AS seq, COALESCE(e.key, '') AS key,
                s.takes AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries p
                  WHERE p.subscription_id = s.id AND p.status = 'pending' AND p.key = COALESCE(e.key, '')) AS fresh,
                e.seq AS e_seq, e.id, e.type, e.at, e.key AS e_key, e.version, e.etag, e.actor, e.audit_id,
                e.subscription_id, e.xid, e.environment
         FROM e JOIN subs s
           ON e.seq_n > s.fan_from AND (s.fan_until IS NULL OR e.seq_n <= s.fan_until)
          AND e.type = ANY (s.event_types)
          AND (e.subscription_id IS NULL OR e.subscription_id <> s.id)
          AND (cardinality(s.key_prefixes) = 0
               OR (e.key IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(s.key_prefixes) p WHERE starts_with(e.key, p))))
       )`;

/** One repository for a caller that builds it alone. */
export function createEventsRepository(): EventsRepository {
  return new EventsRepository();
}
