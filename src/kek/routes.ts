import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditTrail } from '../audit/trail.js';
import { errorResponses } from '../http/schemas.js';
import type { Caller } from '../identity/caller.js';
import { strictBody } from '../zod-fields.js';
import { rewrapResult } from './schemas.js';
import type { KekService, RewrapOptions } from './service.js';

/** Admin endpoints for key rotation. HTTP only; the guard comes from the enclosing scope. */

const BATCH_MESSAGE = 'batchSize must be a whole number from 1 to 5000';
const rewrapBody = strictBody({
  batchSize: z
    .number({ error: BATCH_MESSAGE })
    .int({ error: BATCH_MESSAGE })
    .min(1, { error: BATCH_MESSAGE })
    .max(5000, { error: BATCH_MESSAGE })
    .optional()
    .meta({ description: 'Rows per batch (each batch is one short transaction)', default: 500 }),
})
  // No body at all (curl -X POST) arrives as null: it means "the defaults".
  .nullish()
  .meta({ id: 'RewrapRequest' });

const keyStatus = z.object({
  activeKid: z.string(),
  kids: z.array(
    z.object({
      kid: z.string(),
      rows: z.number().int().meta({ description: 'Stored versions whose data key this kid wraps' }),
      active: z.boolean(),
      inKeyring: z.boolean(),
    }),
  ),
  pendingRewrap: z.number().int().meta({ description: 'Rows not yet under the active kid' }),
});

export async function kekRoutes(
  app: FastifyInstance,
  opts: {
    kek: KekService;
    trail: AuditTrail;
    /** Where a batch records the secrets it touched: the secrets' door (changes.rotated). */
    recordFor: (caller: Caller) => NonNullable<RewrapOptions['record']>;
  },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const errs = errorResponses(400, 401, 403, 503);
  const tags = ['Keys'];

  r.get(
    '/api/keys/status',
    {
      schema: {
        tags,
        summary: 'Key rotation status',
        description: 'The active key id and how many stored versions each key id wraps.',
        response: { 200: keyStatus, ...errs },
      },
    },
    async () => opts.kek.status(),
  );

  r.post(
    '/api/keys/rewrap',
    {
      config: { access: { adminOnly: true, action: 'secret.rotate' } },
      schema: {
        tags,
        summary: 'Re-wrap all data keys to the active key id',
        description:
          'Runs the rewrap online, in batches (values are not re-encrypted; reads and writes continue). Safe to run again or concurrently; returns the counts.',
        body: rewrapBody,
        response: { 200: rewrapResult, ...errs },
      },
    },
    async (req) => {
      // The rewrap commits batch by batch, each batch's secrets audited in its transaction
      // (one row per secret, success or decrypt_failed). A run that touches nothing leaves
      // one row (key null) so the attempt is still on record.
      let touchedAny = false;
      const recorded = opts.recordFor(req.caller);
      const result = await opts.kek.rewrap({
        ...(req.body?.batchSize ? { batchSize: req.body.batchSize } : {}),
        record: async (q, touched) => {
          touchedAny = true;
          await recorded(q, touched);
        },
      });
      if (!touchedAny)
        await opts.trail.note(req.caller, 'secret.rotate', [{ key: null, outcome: 'success' }]);
      return result;
    },
  );
}
