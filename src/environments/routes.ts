import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { resourceRoutes } from '../http/resource-routes.js';
import { errorResponse } from '../http/schemas.js';
import type { BulkGate } from '../secrets/bulk-gate.js';
import type { CompareService } from './compare.js';
import type { PromoteService } from './promote.js';
import {
  compareParams,
  compareQuery,
  compareResponse,
  createEnvironmentBody,
  environmentListQuery,
  environmentView,
  envParams,
  promoteBody,
  promoteResponse,
  updateEnvironmentBody,
} from './schemas.js';
import type { EnvironmentService } from './service.js';

/**
 * /api/environments: listing and reading for every credential (an access key sees the
 * environments it covers), changes for admins. The guard answers 403 for an environment the
 * access key does not cover and 404 for one that does not exist (config.access.environment).
 */
export async function environmentRoutes(
  app: FastifyInstance,
  opts: {
    environments: EnvironmentService;
    compare: CompareService;
    promote: PromoteService;
    gate: BulkGate;
  },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { environments, compare, promote, gate } = opts;
  const envs = resourceRoutes(app, {
    tags: ['Environments'],
    path: '/api/environments',
    noun: 'environment',
    params: envParams,
    view: environmentView,
    readable: true,
    oneAccess: { environment: 'param' },
  });

  envs.list(
    {
      summary: 'List environments',
      description:
        'Oldest first (default leads). An access key sees only the environments it covers. Follow nextCursor for more.',
      querystring: environmentListQuery,
      field: 'environments',
      paged: true,
    },
    (req) => environments.list(req.query, req.caller),
  );

  envs.create(
    {
      summary: 'Create an environment',
      description:
        'Its secrets live under /api/environments/{env}/secrets, the same API as /api/secrets (which is the default environment).',
      body: createEnvironmentBody,
      conflict: true,
    },
    (req) => environments.create(req.body, req.caller),
  );

  envs.get({ summary: 'Get an environment' }, (req) => environments.get(req.params.env, req.caller));

  envs.update({ summary: 'Change an environment’s description', body: updateEnvironmentBody }, (req) =>
    environments.update({ name: req.params.env, description: req.body.description ?? null }, req.caller),
  );

  envs.delete(
    {
      summary: 'Delete an environment',
      description:
        'Only an environment without active secrets can be deleted (409 says how many it holds); its soft-deleted secrets are erased with it. default cannot be deleted (403).',
      answer: z.object({ success: z.literal(true), message: z.string(), erased: z.number().int() }),
      conflict: true,
    },
    async (req) => {
      const { erased } = await environments.remove(req.params.env, req.caller);
      return { success: true as const, message: `Environment ${req.params.env} has been deleted`, erased };
    },
  );

  r.get(
    '/api/environments/:env/compare/:other',
    envs.route(
      { action: 'environment.compare', scope: 'secrets:read', environment: 'param', readLimit: true },
      {
        summary: 'Compare two environments',
        description:
          'Keys only in env (only_in_a), only in other (only_in_b), or in both with equal or different values; never a value. Values are compared on the server, each one counting as a read (audited as environment.compare). Write-only values are compared only for a credential holding secrets:inject. The ETags are what POST .../promote/... names for compare-and-set. Only active, unexpired secrets the caller may see take part; at most 1000 per side (narrow with prefix).',
        params: compareParams,
        querystring: compareQuery,
        response: { 200: compareResponse, 404: errorResponse },
      },
    ),
    async (req) => compare.compare(req.params.env, req.params.other, req.query, req.caller),
  );

  r.post(
    '/api/environments/:env/promote/:other',
    envs.route(
      { action: 'environment.promote', scope: 'secrets:write', environment: 'param', readLimit: true },
      {
        summary: 'Promote secrets to another environment',
        description:
          "Copies the current values of the named keys from env to other as one batch import into other: all or nothing, each entry compare-and-set on the target (targetEtag: the ETag seen there, compare's etagB, or null when it must hold no active secret of that key; else 412 and nothing is written). Values never leave the server; each is an audited read of env (environment.promote). Needs secrets:read and secrets:write and both environments covered. A write-only value stays write-only.",
        params: compareParams,
        body: promoteBody,
        response: { 200: promoteResponse, 404: errorResponse, 412: errorResponse, 413: errorResponse },
      },
    ),
    async (req) =>
      gate.run(req, 'environment.promote', () =>
        promote.promote(req.params.env, req.params.other, req.body.secrets, req.caller, req.actor!),
      ),
  );
}
