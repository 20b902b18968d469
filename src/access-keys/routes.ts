import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponse, errorResponses } from '../http/schemas.js';
import {
  accessKeyListQuery,
  accessKeyParams,
  accessKeyView,
  createAccessKeyBody,
  createdAccessKey,
} from './schemas.js';
import type { AccessKeyService } from './service.js';

/** Access-key management: admin JWT only (the guard enforces config.access.adminOnly). */
export async function accessKeyRoutes(app: FastifyInstance, opts: { accessKeys: AccessKeyService }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { accessKeys } = opts;
  const tags = ['Access keys'];
  const errs = errorResponses(400, 401, 403, 429, 503);

  r.post(
    '/api/access-keys',
    {
      config: { access: { action: 'access_key.create', adminOnly: true } },
      schema: {
        tags,
        summary: 'Create an access key',
        description:
          'Creates a scoped key (ik_...). The token is in this response only; the service keeps only its SHA-256.',
        body: createAccessKeyBody,
        response: { 201: createdAccessKey, ...errs },
      },
    },
    async (req, reply) => reply.code(201).send(await accessKeys.create(req.body, req.caller)),
  );

  r.get(
    '/api/access-keys',
    {
      config: { access: { action: 'access_key.list', adminOnly: true } },
      schema: {
        tags,
        summary: 'List access keys',
        description: 'Newest first, revoked and expired ones included; never the tokens.',
        querystring: accessKeyListQuery,
        response: {
          200: z.object({ accessKeys: z.array(accessKeyView), nextCursor: z.string().nullable() }),
          ...errs,
        },
      },
    },
    async (req) => accessKeys.list(req.query, req.caller),
  );

  r.delete(
    '/api/access-keys/:id',
    {
      config: { access: { action: 'access_key.revoke', adminOnly: true } },
      schema: {
        tags,
        summary: 'Revoke an access key',
        description:
          'Takes effect immediately: the next request with the key gets 401. Revoking twice succeeds.',
        params: accessKeyParams,
        response: { 200: accessKeyView, 404: errorResponse, ...errs },
      },
    },
    async (req) => accessKeys.revoke(req.params.id, req.caller),
  );
}
