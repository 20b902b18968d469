import { z } from 'zod';
import { cursorSchema, limitSchema } from '../pagination.js';
import { shownOnce, storable, strictBody } from '../zod-fields.js';
import { EVENT_TYPES } from './outbox.js';

/** Request and response schemas of /api/webhooks and /api/events (they also generate the OpenAPI document). */

const PREFIX_RE = /^[A-Z0-9_]{1,128}$/;

const eventTypes = z
  .array(z.enum(EVENT_TYPES, { error: `each event type must be one of: ${EVENT_TYPES.join(', ')}` }), {
    error: 'eventTypes must be an array of event types',
  })
  .min(1, { error: 'eventTypes must name at least one event type' })
  .max(EVENT_TYPES.length * 2);

const keyPrefixes = z
  .array(
    z
      .string()
      .regex(PREFIX_RE, { error: 'each key prefix must be 1-128 characters of A-Z, 0-9 and _ (e.g. APP_)' }),
    { error: 'keyPrefixes must be an array of key prefixes' },
  )
  .max(100, { error: 'keyPrefixes may list at most 100 prefixes' });

const url = storable(
  z
    .string({ error: "url is required: the receiver's https:// URL" })
    .min(1, { error: 'url must not be empty' })
    .max(2048, { error: 'url must be at most 2048 characters' }),
  'url',
);
const description = storable(
  z.string().max(1024, { error: 'description must be at most 1024 characters' }),
  'description',
);

export const createWebhookBody = strictBody({
  url,
  eventTypes: eventTypes
    .optional()
    .meta({ description: 'The event types to send; omit for every secret.* type and webhook.disabled' }),
  keyPrefixes: keyPrefixes
    .optional()
    .meta({ description: 'Only events of keys starting with one of these; omit or [] for every key' }),
  description: description.nullable().optional(),
}).meta({ id: 'CreateWebhookRequest' });

/** What a caller asks for a new subscription (the zod schema is its one definition). */
export type CreateWebhookInput = z.output<typeof createWebhookBody>;

export const updateWebhookBody = strictBody({
  url: url.optional(),
  eventTypes: eventTypes.optional(),
  keyPrefixes: keyPrefixes.optional(),
  description: description.nullable().optional(),
  enabled: z.boolean({ error: 'enabled must be true or false' }).optional(),
})
  .refine((b) => Object.keys(b).length > 0, { error: 'Request body must change at least one field' })
  .meta({ id: 'UpdateWebhookRequest' });

/** A change to a subscription: only the fields given change. */
export type UpdateWebhookInput = z.output<typeof updateWebhookBody>;

export const webhookView = z
  .object({
    id: z.uuid(),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.string()),
    keyPrefixes: z.array(z.string()),
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    consecutiveFailures: z.number().int(),
    createdBy: z.string(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    previousSecretRetiresAt: z.iso.datetime().nullable().meta({
      description: 'While a rotated-out signing secret still signs alongside the new one: until when',
    }),
  })
  .meta({ id: 'Webhook' });

export const createdWebhook = webhookView
  .extend({
    secret: shownOnce('The signing secret (whsec_...)'),
  })
  .meta({ id: 'CreatedWebhook' });

export const rotatedSecret = z
  .object({
    secret: shownOnce('The new signing secret (whsec_...)'),
    previousSecretRetiresAt: z.iso.datetime(),
  })
  .meta({ id: 'RotatedWebhookSecret' });

export const webhookParams = z.object({ id: z.uuid({ error: 'id must be a webhook id (a UUID)' }) });
export const deliveryParams = webhookParams.extend({
  deliveryId: z
    .string()
    .regex(/^[1-9][0-9]{0,17}$/, { error: 'deliveryId must be a delivery id (a number)' }),
});
export const listQuery = z.object({ limit: limitSchema, cursor: cursorSchema });

export const deliveryView = z
  .object({
    id: z.string(),
    eventId: z.string().meta({ description: 'The webhook-id header of every attempt' }),
    eventType: z.string(),
    key: z.string().nullable(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    nextAttemptAt: z.iso.datetime().nullable(),
    createdAt: z.iso.datetime(),
    doneAt: z.iso.datetime().nullable(),
    lastResponseStatus: z.number().int().nullable(),
    lastLatencyMs: z.number().int().nullable(),
    lastError: z.string().nullable(),
  })
  .meta({ id: 'WebhookDelivery' });
