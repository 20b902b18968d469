import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { errorResponse } from '../http/schemas.js';
import { batchBody, batchResponse } from './batch-schemas.js';
import type { BatchService } from './batch-service.js';
import type { BulkGate } from './bulk-gate.js';
import { DEFAULT_BASE, type Mount } from './mount.js';

/** POST /api/secrets/batch (secrets import): schema, guard from the enclosing scope, one call. */
export async function batchRoutes(
  app: FastifyInstance,
  opts: { batch: BatchService; gate: BulkGate } & Mount,
) {
  const base = opts.base ?? DEFAULT_BASE;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    `${base}/batch`,
    {
      config: { access: { action: 'secret.update', scope: 'secrets:write' } },
      ...opts.gate.hooks('secret.update', { rated: true }),
      schema: {
        tags: ['Secrets'],
        summary: 'Create or update many secrets at once',
        description:
          'Every entry is created (or revived), updated or left unchanged in one transaction: all or nothing, one audit row per key. ifMatch per entry applies it only to that state (else 412 naming the key). generate in place of value creates a missing secret with a server-generated value and leaves an existing one as it is. dryRun reports what would change (names only) and changes nothing. Access keys need secrets:write and every key within their patterns.',
        body: batchBody,
        response: {
          200: batchResponse,
          400: errorResponse,
          401: errorResponse,
          403: errorResponse,
          409: errorResponse,
          412: errorResponse,
          413: errorResponse,
          429: errorResponse,
          503: errorResponse,
        },
      },
    },
    async (req) =>
      opts.gate.run(
        req,
        'secret.update',
        () =>
          opts.batch.apply(
            { entries: req.body.secrets, dryRun: req.body.dryRun ?? false, actor: req.actor! },
            req.caller,
          ),
        req.body.secrets.length,
      ),
  );
}
