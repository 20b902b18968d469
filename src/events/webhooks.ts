import { randomUUID } from 'node:crypto';
import type { AuditTrail } from '../audit/trail.js';
import type { EventsConfig } from '../config.js';
import { sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { errors } from '../errors.js';
import type { Caller } from '../identity/caller.js';
import { CursorCodec, type PageQuery } from '../pagination.js';
import { checkDestination, parseDestination } from './destination.js';
import { EVENT_TYPES } from './outbox.js';
import type { DeliveryLogRow, EventsRepository, SubscriptionRow } from './repository.js';
import type { CreateWebhookInput, UpdateWebhookInput } from './schemas.js';
import { newSigningSecret } from './signing.js';

/** Webhook subscriptions: admin only, every change audited and committed with its row. */

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toView(r: SubscriptionRow) {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    eventTypes: r.event_types,
    keyPrefixes: r.key_prefixes,
    enabled: r.enabled,
    disabledReason: r.disabled_reason,
    consecutiveFailures: r.consecutive_failures,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    previousSecretRetiresAt: iso(r.previous_retires_at),
  };
}

function toDelivery(r: DeliveryLogRow) {
  return {
    id: r.id,
    eventId: r.event_id,
    eventType: r.event_type,
    key: r.key,
    status: r.status as 'pending' | 'delivered' | 'failed',
    attempts: r.attempts,
    nextAttemptAt: r.status === 'pending' ? r.next_at.toISOString() : null,
    createdAt: r.created_at.toISOString(),
    doneAt: iso(r.done_at),
    lastResponseStatus: r.response_status,
    lastLatencyMs: r.latency_ms,
    lastError: r.error,
  };
}

const cursors = new CursorCodec({ tag: 'w1', positionOf: (r: { seq: string }) => r.seq });
const deliveryCursors = new CursorCodec({ tag: 'd1', positionOf: (r: { id: string }) => r.id });

const notFound = (id: string) =>
  errors.notFound(`Webhook not found: ${id}`, 'List webhooks with GET /api/webhooks');

/** The sealing identity of a subscription's signing secret, generation n. */
const identity = (id: string, generation: number) => ({ secretId: id, key: 'webhook', version: generation });

export interface WebhookServiceDeps {
  db: Database;
  repo: EventsRepository;
  trail: AuditTrail;
  keyring: Keyring;
  config: EventsConfig;
  /** A subscription was created or enabled: the dispatcher stops idling (dispatcher.ts `wake`). */
  onEnabled?: () => void;
}

/** Webhook subscriptions and their deliveries, each call audited. */
export class WebhookService {
  constructor(private readonly deps: WebhookServiceDeps) {}

  async create(input: CreateWebhookInput, caller: Caller) {
    const url = await this.destination(input.url);
    const id = randomUUID();
    const secret = newSigningSecret();
    const row = await this.deps.trail.change(caller, 'webhook.create', `webhook:${id}`, async (tx) => ({
      result: await this.deps.repo.insertSubscription(
        tx,
        {
          id,
          url,
          description: input.description ?? null,
          eventTypes: [...new Set(input.eventTypes ?? EVENT_TYPES)],
          keyPrefixes: [...new Set(input.keyPrefixes ?? [])],
          createdBy: caller.actor,
        },
        sealValue(this.deps.keyring, identity(id, 1), secret),
      ),
      version: null,
    }));
    this.deps.onEnabled?.();
    return { ...toView(row), secret };
  }

  async list(query: PageQuery, caller: Caller) {
    const { page, nextCursor } = await cursors.page(query, (limit, beforeSeq) =>
      this.deps.trail.lookup(caller, 'webhook.list', null, () =>
        this.deps.repo.listSubscriptions(this.deps.db, { limit, beforeSeq }),
      ),
    );
    return { webhooks: page.map(toView), nextCursor };
  }

  async get(id: string, caller: Caller) {
    const row = await this.deps.trail.read(caller, 'webhook.list', `webhook:${id}`, async () => {
      const r = await this.deps.repo.findSubscription(this.deps.db, id);
      return r
        ? { ok: true as const, touched: [], result: r }
        : {
            ok: false as const,
            touched: [{ key: `webhook:${id}`, outcome: 'not_found' as const }],
            error: notFound(id),
          };
    });
    return toView(row);
  }

  async update({ id, changes: input }: { id: string; changes: UpdateWebhookInput }, caller: Caller) {
    const url = input.url === undefined ? undefined : await this.destination(input.url);
    const row = await this.deps.trail.change(caller, 'webhook.update', `webhook:${id}`, async (tx) => {
      const r = await this.deps.repo.updateSubscription(tx, id, {
        ...input,
        url,
        eventTypes: input.eventTypes && [...new Set(input.eventTypes)],
        keyPrefixes: input.keyPrefixes && [...new Set(input.keyPrefixes)],
      });
      if (!r) throw notFound(id);
      return { result: r, version: null };
    });
    if (row.enabled) this.deps.onEnabled?.();
    return toView(row);
  }

  async remove(id: string, caller: Caller) {
    await this.deps.trail.change(caller, 'webhook.delete', `webhook:${id}`, async (tx) => {
      if (!(await this.deps.repo.deleteSubscription(tx, id))) throw notFound(id);
      return { result: undefined, version: null };
    });
  }

  /** A new signing secret; the current one keeps signing alongside it for the grace period. */
  async rotate(id: string, caller: Caller) {
    const secret = newSigningSecret();
    return this.deps.trail.change(caller, 'webhook.rotate', `webhook:${id}`, async (tx) => {
      // The row lock serialises rotations of one subscription (generation numbers).
      if (!(await this.deps.repo.lockSubscription(tx, id))) throw notFound(id);
      const generation = await this.deps.repo.nextGeneration(tx, id);
      await this.deps.repo.rotate(
        tx,
        id,
        generation,
        sealValue(this.deps.keyring, identity(id, generation), secret),
        this.deps.config.secretGraceSeconds,
      );
      const r = (await this.deps.repo.findSubscription(tx, id))!;
      return {
        result: { secret, previousSecretRetiresAt: r.previous_retires_at!.toISOString() },
        version: generation,
      };
    });
  }

  async deliveries(id: string, query: PageQuery, caller: Caller) {
    const { page, nextCursor } = await deliveryCursors.page(
      query,
      (limit, beforeId) =>
        this.deps.trail.read(caller, 'webhook.list', `webhook:${id}`, async () => {
          if (!(await this.deps.repo.findSubscription(this.deps.db, id)))
            return {
              ok: false as const,
              touched: [{ key: `webhook:${id}`, outcome: 'not_found' as const }],
              error: notFound(id),
            };
          return {
            ok: true as const,
            touched: [],
            result: await this.deps.repo.deliveries(this.deps.db, id, { limit, beforeId }),
          };
        }),
      100,
    );
    return { deliveries: page.map(toDelivery), nextCursor };
  }

  /** Queues a delivery's event again (same webhook-id: receivers deduplicate on it). */
  async redeliver(id: string, deliveryId: string, caller: Caller) {
    const newId = await this.deps.trail.change(caller, 'webhook.redeliver', `webhook:${id}`, async (tx) => {
      const d = await this.deps.repo.redeliver(tx, id, deliveryId);
      if (!d)
        throw errors.notFound(
          `Delivery not found: ${deliveryId} of webhook ${id}`,
          `List its deliveries with GET /api/webhooks/${id}/deliveries`,
        );
      return { result: d, version: null };
    });
    return { id: newId };
  }

  private async destination(raw: string): Promise<string> {
    // The destination rules are the events settings' allowHttp and allowPrivate.
    const url = parseDestination(raw, this.deps.config);
    await checkDestination(url, this.deps.config);
    return url.toString();
  }
}

/** The service for a caller that builds it alone. */
export function createWebhookService(deps: WebhookServiceDeps): WebhookService {
  return new WebhookService(deps);
}
