import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Limits } from '../http/rate-limits.js';
import { routeOptions, type Spec } from '../http/route-options.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import type { BulkGate } from './bulk-gate.js';
import { exportedSecrets, exportQuery, renderBody, renderResponse } from './bulk-schemas.js';
import type { BulkService } from './bulk-service.js';
import { DEFAULT_BASE, type Mount } from './mount.js';

/**
 * Export and templates. Registered in the secured scope; the static paths take precedence
 * over /api/secrets/:key in the router whatever the registration order (and neither name
 * is a valid key in GET, which only accepts upper case).
 */
export async function bulkRoutes(
  app: FastifyInstance,
  opts: { bulk: BulkService; limits: Limits; gate: BulkGate } & Mount,
) {
  const base = opts.base ?? DEFAULT_BASE;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { bulk, limits, gate } = opts;
  const { route } = routeOptions(['Secrets'], errorResponses(400, 401, 403, 429, 500, 503));
  type BulkRead = 'secret.export' | 'secret.render';
  /** A read of many values: admitted through the gate before its body is read. */
  const bulkRead = <S extends Spec>(action: BulkRead, schema: S) => ({
    ...route({ action, scope: 'secrets:read' }, schema),
    ...gate.hooks(action),
  });
  /** Runs `work` within the gate's bounds; each value returned counts against READ_RATE_LIMIT, as single reads do. */
  const read = <T>(
    req: FastifyRequest,
    action: BulkRead,
    work: (charge: (n: number) => Promise<void>) => Promise<T>,
  ) => gate.run(req, action, () => work((n) => limits.readMany(req, n)));

  r.get(
    `${base}/export`,
    bulkRead('secret.export', {
      summary: 'Export secret values',
      description:
        'All active, unexpired secrets (optionally under a prefix) with their values, read in one snapshot. dotenv output is quoted so that dotenv parsers give back the exact values; a value no dotenv quoting can carry answers 400 (use json).',
      querystring: exportQuery,
      response: {
        200: {
          description: 'The secrets',
          content: {
            'application/json': { schema: exportedSecrets },
            'text/plain': { schema: z.string() },
          },
        },
      },
    }),
    async (req, reply) => {
      const { prefix, format } = req.query;
      const exported = await read<unknown>(req, 'secret.export', (charge) =>
        format === 'dotenv'
          ? bulk.exportDotenv({ prefix, charge }, req.caller)
          : bulk.exportJson({ prefix, charge }, req.caller),
      );
      const type = format === 'dotenv' ? 'text/plain' : 'application/json';
      return reply.type(`${type}; charset=utf-8`).send(exported);
    },
  );

  r.post(
    `${base}/render`,
    bulkRead('secret.render', {
      summary: 'Render a template',
      description:
        'Replaces every {{Secrets.NAME}} (name case-insensitive) with the value of the active secret NAME, in one pass: values are never expanded again. Unresolved names answer 400 listing them. A template names at most 1000 distinct secrets, and each name counts against the read limit, found or not.',
      body: renderBody,
      response: { 200: renderResponse, 413: errorResponse },
    }),
    async (req) => ({
      rendered: await read(req, 'secret.render', (charge) =>
        bulk.render({ template: req.body.template, charge }, req.caller),
      ),
    }),
  );
}
