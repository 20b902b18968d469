import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { routeOptions } from '../http/route-options.js';
import { errorResponse } from '../http/schemas.js';
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
  const { admin } = routeOptions(['Access keys']);

  r.post(
    '/api/access-keys',
    admin('access_key.create', {
      summary: 'Create an access key',
      description:
        'Creates a scoped key (ik_...). The token is in this response only; the service keeps only its SHA-256.',
      body: createAccessKeyBody,
      response: { 201: createdAccessKey },
    }),
    async (req, reply) => reply.code(201).send(await accessKeys.create(req.body, req.caller)),
  );

  r.get(
    '/api/access-keys',
    admin('access_key.list', {
      summary: 'List access keys',
      description: 'Newest first, revoked and expired ones included; never the tokens.',
      querystring: accessKeyListQuery,
      response: { 200: z.object({ accessKeys: z.array(accessKeyView), nextCursor: z.string().nullable() }) },
    }),
    async (req) => accessKeys.list(req.query, req.caller),
  );

  r.delete(
    '/api/access-keys/:id',
    admin('access_key.revoke', {
      summary: 'Revoke an access key',
      description:
        'Takes effect immediately: the next request with the key gets 401. Revoking twice succeeds.',
      params: accessKeyParams,
      response: { 200: accessKeyView, 404: errorResponse },
    }),
    async (req) => accessKeys.revoke(req.params.id, req.caller),
  );
}
