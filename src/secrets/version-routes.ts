import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { routeOptions } from '../http/route-options.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import { keyedChanges } from './change-routes.js';
import { DEFAULT_BASE, type Mount } from './mount.js';
import { keyParams, rollbackBody, versionsResponse } from './schemas.js';
import type { SecretService } from './service.js';

/** Versions and recovery: history, rollback, restore. HTTP only; one service call per route. */
export async function versionRoutes(app: FastifyInstance, opts: { secrets: SecretService } & Mount) {
  const base = opts.base ?? DEFAULT_BASE;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { secrets } = opts;
  const { route } = routeOptions(['Versions'], errorResponses(400, 401, 403, 404, 503));
  const change = keyedChanges(app, route, base);

  r.get(
    `${base}/:key/versions`,
    route(
      { action: 'secret.versions', scope: 'secrets:read', keyFrom: 'params' },
      {
        summary: 'List the versions of a secret',
        description:
          'Metadata of every kept version, newest first (never values); inactive secrets included. The ETag header names the current state.',
        params: keyParams,
        response: { 200: versionsResponse },
      },
    ),
    async (req, reply) => {
      const { etag, body } = await secrets.versions({ key: req.params.key }, req.caller);
      reply.header('etag', etag);
      return body;
    },
  );

  change(
    'POST',
    '/:key/rollback',
    { action: 'secret.rollback', scope: 'secrets:write' },
    {
      summary: 'Roll back to an older version',
      description:
        'Stores the value of a kept version as a new version (history is never rewritten). Accepts If-Match.',
      body: rollbackBody,
      response: {
        200: z.object({ success: z.literal(true), message: z.string(), version: z.number().int() }),
        500: errorResponse,
      },
      change: (target, req) => secrets.rollback({ ...target, version: req.body.version }, req.caller),
      done: (req, { version }) => `rolled back to version ${req.body.version} as version ${version}`,
    },
  );

  change(
    'POST',
    '/:key/restore',
    { action: 'secret.restore', scope: 'secrets:write' },
    {
      summary: 'Restore a soft-deleted secret',
      description:
        'Reactivates a soft-deleted secret with its value and history. Restoring an active secret changes nothing. Accepts If-Match.',
      change: (target, req) => secrets.restore(target, req.caller),
      done: 'restored successfully',
    },
  );
}
