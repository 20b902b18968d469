import type { AuditAction } from '../audit/entry.js';

/**
 * The outbox: the change_events row every committed change writes in its own statement
 * (migrations/008_change_events.sql). Events carry no values: type, id, time, key,
 * version, ETag, actor and the id of the change's audit row. A writer only ever inserts the
 * event: the dispatcher fans events out into deliveries later, in batches (repository
 * `fanOut`), outside every writer's transaction.
 */

/** Every event type, in the order docs/events.md lists them. */
export const EVENT_TYPES = [
  'secret.created',
  'secret.updated',
  'secret.deleted',
  'secret.restored',
  'secret.purged',
  'secret.rolled_back',
  'secret.revived',
  'secret.reserved',
  'secret.unreserved',
  'secret.rewrapped',
  'secret.expiring',
  'webhook.disabled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a change's patch changed, as far as its event type depends on it. */
export interface PatchShape {
  version?: unknown;
  isActive?: boolean | undefined;
  isReserved?: boolean | undefined;
}

/**
 * The event type of a change, from its audit action and what it changed. A PUT names the
 * most telling part of its change: a new value (updated), then deactivation (deleted) or
 * reactivation (restored), then reserving; anything else (description, expiry,
 * write-only) is `secret.updated`. A create that finds the key soft-deleted revives it.
 */
export function eventTypeOf(action: AuditAction, patch: PatchShape | undefined): EventType | undefined {
  switch (action) {
    case 'secret.create':
      return patch ? 'secret.revived' : 'secret.created';
    case 'secret.delete':
      return 'secret.deleted';
    case 'secret.purge':
      return 'secret.purged';
    case 'secret.restore':
      return 'secret.restored';
    case 'secret.rollback':
      return 'secret.rolled_back';
    case 'secret.rotate':
      return 'secret.rewrapped';
    case 'secret.update':
      if (!patch || patch.version) return 'secret.updated';
      if (patch.isActive === false) return 'secret.deleted';
      if (patch.isActive === true) return 'secret.restored';
      if (patch.isReserved === true) return 'secret.reserved';
      if (patch.isReserved === false) return 'secret.unreserved';
      return 'secret.updated';
    default:
      return undefined;
  }
}

/** A changed secret's event, as the door (src/secrets/changes.ts `alongside`) hands it on. */
export interface ChangeEvent {
  type: EventType;
  key: string;
  version: number | null;
  actor: string;
  secretId: string;
  /** The changed secret's environment (rewrap batches read it from the secret's row). */
  environment: string;
}

/** The event of one changed secret (none for an action that is not a change of a secret). */
export function changeEvent(c: {
  action: AuditAction;
  patch?: PatchShape | undefined;
  key: string;
  version: number | null;
  actor: string;
  secretId: string;
  environment: string;
}): ChangeEvent | undefined {
  const type = eventTypeOf(c.action, c.patch);
  return (
    type && {
      type,
      key: c.key,
      version: c.version,
      actor: c.actor,
      secretId: c.secretId,
      environment: c.environment,
    }
  );
}

/**
 * The events of changes whose own statement has run (a new secret, a rotation batch), on
 * their transaction, with the audit rows they name, in one statement: `auditInsert` is the
 * audit rows' INSERT (returning id and key), and each event is joined to its row by key
 * (the caller passes events of distinct keys). The ETag is read from the secret's row.
 */
export function appendEventsSql(
  auditInsert: string,
  events: readonly ChangeEvent[],
  params: unknown[],
): string {
  const first = params.length + 1;
  params.push(
    events.map((e) => e.type),
    events.map((e) => e.key),
    events.map((e) => e.version),
    events.map((e) => e.secretId),
    events.map((e) => e.actor),
  );
  const p = (i: number) => `$${first + i}`;
  return `WITH audit_rows AS (${auditInsert} RETURNING id, key)
    INSERT INTO change_events (type, key, version, etag, actor, audit_id, environment)
    SELECT e.type, e.key, e.version, '"' || s.id::text || '.' || s.revision::text || '"', e.actor, a.id,
      s.environment
    FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::int[], ${p(3)}::uuid[], ${p(4)}::text[])
      WITH ORDINALITY AS e (type, key, version, secret_id, actor, n)
    JOIN audit_rows a ON a.key = e.key
    JOIN secrets s ON s.id = e.secret_id
    ORDER BY e.n`;
}

/**
 * The event of a change as a CTE of the change's own statement (`outbox AS (...)`), its
 * parameters appended to `params`. `row` names the CTE with the changed secret's `id` and
 * `revision` (the ETag is built from them; none after a purge), and `audit` the CTE of
 * the change's audit row (auditRowCte): the event is inserted once per row of both, so a
 * guarded change that matched nothing writes no event either.
 */
export function outboxCte(
  ev: Pick<ChangeEvent, 'type' | 'key' | 'version' | 'actor' | 'environment'>,
  params: unknown[],
  row: string | undefined,
  audit = 'audit_row',
): string {
  const first = params.length + 1;
  params.push(ev.type, ev.key, ev.version, ev.actor, ev.environment);
  const etag = row ? `'"' || ${row}.id::text || '.' || ${row}.revision::text || '"'` : 'NULL::text';
  const from = row ? `${row}, ${audit}` : audit;
  return `outbox AS (
    INSERT INTO change_events (type, key, version, etag, actor, audit_id, environment)
    SELECT $${first}::text, $${first + 1}::text, $${first + 2}::int, ${etag}, $${first + 3}::text, ${audit}.id,
      $${first + 4}::text
    FROM ${from} RETURNING 1)`;
}
