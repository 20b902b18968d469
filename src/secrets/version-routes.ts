import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { changed, routeOptions } from '../http/route-options.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import { DEFAULT_BASE, type Mount } from './mount.js';
import { keyedChange, keyParams, rollbackBody, versionsResponse } from './schemas.js';
import type { SecretService } from './service.js';

/** Versions and recovery: history, rollback, restore. HTTP only; one service call per route. */
export async function versionRoutes(app: FastifyInstance, opts: { secrets: SecretService } & Mount) {
  const base = opts.base ?? DEFAULT_BASE;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { secrets } = opts;
  const { route } = routeOptions(['Versions'], errorResponses(400, 401, 403, 404, 503));

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

  r.post(
    `${base}/:key/rollback`,
    route(
      { action: 'secret.rollback', scope: 'secrets:write', keyFrom: 'params' },
      {
        summary: 'Roll back to an older version',
        description:
          'Stores the value of a kept version as a new version (history is never rewritten). Accepts If-Match.',
        ...keyedChange,
        body: rollbackBody,
        response: {
          200: z.object({ success: z.literal(true), message: z.string(), version: z.number().int() }),
          412: errorResponse,
          500: errorResponse,
        },
      },
    ),
    async (req, reply) => {
      const { key } = req.params;
      const { version, etag } = await secrets.rollback(
        { key, version: req.body.version, ifMatch: req.headers['if-match'] },
        req.caller,
      );
      const message = `Secret ${key} has been rolled back to version ${req.body.version} as version ${version}`;
      return { ...changed(reply, etag, message), version };
    },
  );

  r.post(
    `${base}/:key/restore`,
    route(
      { action: 'secret.restore', scope: 'secrets:write', keyFrom: 'params' },
      {
        summary: 'Restore a soft-deleted secret',
        description:
          'Reactivates a soft-deleted secret with its value and history. Restoring an active secret changes nothing. Accepts If-Match.',
        ...keyedChange,
        response: { 200: z.object({ success: z.literal(true), message: z.string() }), 412: errorResponse },
      },
    ),
    async (req, reply) => {
      const { key } = req.params;
      const { etag } = await secrets.restore({ key, ifMatch: req.headers['if-match'] }, req.caller);
      return changed(reply, etag, `Secret ${key} has been restored successfully`);
    },
  );
}
