import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Limits } from '../http/rate-limits.js';
import { routeOptions } from '../http/route-options.js';
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
  // Every value returned counts against READ_RATE_LIMIT, like single reads.
  const charge = (req: FastifyRequest) => (n: number) => limits.readMany(req, n);
  const { route } = routeOptions(['Secrets'], errorResponses(400, 401, 403, 429, 500, 503));

  r.get(
    `${base}/export`,
    {
      ...route(
        { action: 'secret.export', scope: 'secrets:read' },
        {
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
        },
      ),
      ...gate.hooks('secret.export'),
    },
    async (req, reply) => {
      if (req.query.format === 'dotenv') {
        const text = await gate.run(req, 'secret.export', () =>
          bulk.exportDotenv({ prefix: req.query.prefix, charge: charge(req) }, req.caller),
        );
        return reply.type('text/plain; charset=utf-8').send(text);
      }
      const json = await gate.run(req, 'secret.export', () =>
        bulk.exportJson({ prefix: req.query.prefix, charge: charge(req) }, req.caller),
      );
      return reply.type('application/json; charset=utf-8').send(json);
    },
  );

  r.post(
    `${base}/render`,
    {
      ...route(
        { action: 'secret.render', scope: 'secrets:read' },
        {
          summary: 'Render a template',
          description:
            'Replaces every {{Secrets.NAME}} (name case-insensitive) with the value of the active secret NAME, in one pass: values are never expanded again. Unresolved names answer 400 listing them. A template names at most 1000 distinct secrets, and each name counts against the read limit, found or not.',
          body: renderBody,
          response: { 200: renderResponse, 413: errorResponse },
        },
      ),
      ...gate.hooks('secret.render'),
    },
    async (req) => ({
      rendered: await gate.run(req, 'secret.render', () =>
        bulk.render({ template: req.body.template, charge: charge(req) }, req.caller),
      ),
    }),
  );
}
