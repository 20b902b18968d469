import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditTrail } from '../audit/trail.js';
import { resourceRoutes } from '../http/resource-routes.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import {
  createdWebhook,
  createWebhookBody,
  deliveryParams,
  deliveryView,
  listQuery,
  rotatedSecret,
  updateWebhookBody,
  webhookParams,
  webhookView,
} from './schemas.js';
import { type EventStreams, type Position, parsePosition } from './stream.js';
import type { WebhookService } from './webhooks.js';

/** Webhook subscriptions: admin JWT only (the guard enforces config.access.adminOnly). */
export async function webhookRoutes(app: FastifyInstance, opts: { webhooks: WebhookService }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { webhooks } = opts;
  const subscriptions = resourceRoutes(app, {
    tags: ['Webhooks'],
    path: '/api/webhooks',
    noun: 'webhook',
    params: webhookParams,
    view: webhookView,
  });

  subscriptions.create(
    {
      summary: 'Create a webhook subscription',
      description:
        'Change events are POSTed to the url, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature). The signing secret (whsec_...) is in this response only; the service keeps it sealed. Destinations on loopback, private, link-local or metadata addresses are refused unless WEBHOOK_ALLOW_PRIVATE is set.',
      body: createWebhookBody,
      answer: createdWebhook,
    },
    (req) => webhooks.create(req.body, req.caller),
  );

  subscriptions.list(
    {
      summary: 'List webhook subscriptions',
      description: 'Newest first; never the signing secrets.',
      querystring: listQuery,
      field: 'webhooks',
      paged: true,
    },
    (req) => webhooks.list(req.query, req.caller),
  );

  subscriptions.get({ summary: 'Show a webhook subscription' }, (req) =>
    webhooks.get(req.params.id, req.caller),
  );

  subscriptions.update(
    {
      summary: 'Change a webhook subscription',
      description: 'enabled: true re-enables a disabled subscription and clears its failure run.',
      body: updateWebhookBody,
    },
    (req) => webhooks.update({ id: req.params.id, changes: req.body }, req.caller),
  );

  subscriptions.delete(
    {
      summary: 'Delete a webhook subscription',
      description: 'Its pending deliveries and its delivery log go with it.',
      answer: z.object({ success: z.literal(true) }),
    },
    async (req) => {
      await webhooks.remove(req.params.id, req.caller);
      return { success: true as const };
    },
  );

  r.post(
    '/api/webhooks/:id/rotate-secret',
    subscriptions.admin('webhook.rotate', {
      summary: 'Rotate the signing secret',
      description:
        'Returns a new whsec_ secret (only here). The previous one keeps signing alongside it until previousSecretRetiresAt (WEBHOOK_SECRET_GRACE): meanwhile webhook-signature carries both signatures.',
      params: webhookParams,
      response: { 200: rotatedSecret, 404: errorResponse },
    }),
    async (req) => webhooks.rotate(req.params.id, req.caller),
  );

  r.get(
    '/api/webhooks/:id/deliveries',
    subscriptions.admin('webhook.list', {
      summary: 'The delivery log',
      description: 'Newest first: status, attempts, the last response code, latency and error.',
      params: webhookParams,
      querystring: listQuery,
      response: {
        200: z.object({ deliveries: z.array(deliveryView), nextCursor: z.string().nullable() }),
        404: errorResponse,
      },
    }),
    async (req) => webhooks.deliveries(req.params.id, req.query, req.caller),
  );

  r.post(
    '/api/webhooks/:id/deliveries/:deliveryId/redeliver',
    subscriptions.admin('webhook.redeliver', {
      summary: 'Send a delivery again',
      description: 'Queues its event again, with the same webhook-id (receivers deduplicate on it).',
      params: deliveryParams,
      response: { 202: z.object({ id: z.string() }), 404: errorResponse },
    }),
    async (req, reply) =>
      reply.code(202).send(await webhooks.redeliver(req.params.id, req.params.deliveryId, req.caller)),
  );
}

/** GET /api/events: Server-Sent Events (src/events/stream.ts). */
export async function eventStreamRoutes(
  app: FastifyInstance,
  opts: { streams: EventStreams; trail: AuditTrail },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { streams, trail } = opts;
  app.addHook('preClose', async () => streams.closeAll());

  r.get(
    '/api/events',
    {
      config: { access: { action: 'events.stream', scope: 'secrets:list' } },
      schema: {
        tags: ['Webhooks'],
        summary: 'Stream change events (Server-Sent Events)',
        description:
          'text/event-stream of the change events the caller may see (an access key: the keys its patterns cover; needs secrets:list). Each event is `id: <position>`, `event: <type>`, `data: <JSON>`; reconnect with the Last-Event-ID header (or ?lastEventId=) to resume exactly after it. A comment line is sent as a heartbeat.',
        querystring: z.object({
          lastEventId: z
            .string()
            .max(64)
            .optional()
            .meta({ description: 'For clients that cannot send Last-Event-ID' }),
        }),
        headers: z.object({ 'last-event-id': z.string().max(64).optional() }),
        response: {
          200: z.string().meta({ description: 'text/event-stream' }),
          ...errorResponses(400, 401, 403, 429, 503),
        },
      },
    },
    async (req, reply) => {
      const given = req.headers['last-event-id'] ?? req.query.lastEventId;
      let release: () => void;
      try {
        release = streams.admit(req.caller);
      } catch (err) {
        await trail.refused(req.caller, 'events.stream', [null], err);
        throw err;
      }
      let from: Position;
      try {
        from = await trail.lookup(req.caller, 'events.stream', null, async () =>
          given === undefined ? streams.now() : parsePosition(given),
        );
      } catch (err) {
        release();
        throw err;
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      res.flushHeaders();
      const closed = new Promise<void>((resolve) => res.once('close', () => resolve()));
      try {
        await streams.run(req.caller, from, { write: (c) => res.write(c), closed });
      } catch (err) {
        req.log.warn({ errCode: (err as { code?: unknown }).code }, 'event stream ended by an error');
      } finally {
        release();
        res.end();
      }
    },
  );
}
