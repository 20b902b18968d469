import type { AuditAction } from '../audit/entry.js';

/**
 * The outbox: the change_events row every committed change writes in its own statement
 * (migrations/007_change_events.sql). Events carry no values: type, id, time, key,
 * version, ETag, actor and the id of the change's audit row. Delivery fans out from the
 * row (a trigger inserts one webhook_deliveries row per matching subscription), so a
 * writer only ever inserts the event.
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

/**
 * The event of a change as a CTE of the change's own statement (`outbox AS (...)`), its
 * parameters appended to `params`. `row` names the CTE with the changed secret's `id` and
 * `revision` (the ETag is built from them; none after a purge), and `audit` the CTE of
 * the change's audit row (auditRowCte): the event is inserted once per row of both, so a
 * guarded change that matched nothing writes no event either.
 */
export function outboxCte(
  ev: { type: EventType; key: string; version: number | null; actor: string },
  params: unknown[],
  row: string | undefined,
  audit = 'audit_row',
): string {
  const first = params.length + 1;
  params.push(ev.type, ev.key, ev.version, ev.actor);
  const etag = row ? `'"' || ${row}.id::text || '.' || ${row}.revision::text || '"'` : 'NULL::text';
  const from = row ? `${row}, ${audit}` : audit;
  return `outbox AS (
    INSERT INTO change_events (type, key, version, etag, actor, audit_id)
    SELECT $${first}::text, $${first + 1}::text, $${first + 2}::int, ${etag}, $${first + 3}::text, ${audit}.id
    FROM ${from} RETURNING 1)`;
}
