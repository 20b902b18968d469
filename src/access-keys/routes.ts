import type { FastifyInstance } from 'fastify';
import { resourceRoutes } from '../http/resource-routes.js';
import {
  accessKeyListQuery,
  accessKeyParams,
  accessKeyView,
  createAccessKeyBody,
  createdAccessKey,
} from './schemas.js';
import type { AccessKeyService } from './service.js';

/** Access-key management: admin JWT only (the guard enforces config.access.adminOnly). */
export async function accessKeyRoutes(
  app: FastifyInstance,
  { accessKeys }: { accessKeys: AccessKeyService },
) {
  const keys = resourceRoutes(app, {
    tags: ['Access keys'],
    path: '/api/access-keys',
    noun: 'access_key',
    params: accessKeyParams,
    view: accessKeyView,
  });

  keys.create(
    {
      summary: 'Create an access key',
      description:
        'Creates a scoped key (ik_...). The token is in this response only; the service keeps only its SHA-256.',
      body: createAccessKeyBody,
      answer: createdAccessKey,
    },
    (req) => accessKeys.create(req.body, req.caller),
  );

  keys.list(
    {
      summary: 'List access keys',
      description: 'Newest first, revoked and expired ones included; never the tokens.',
      querystring: accessKeyListQuery,
      field: 'accessKeys',
      paged: true,
    },
    (req) => accessKeys.list(req.query, req.caller),
  );

  keys.revoke(
    {
      summary: 'Revoke an access key',
      description:
        'Takes effect immediately: the next request with the key gets 401. Revoking twice succeeds.',
    },
    (req) => accessKeys.revoke(req.params.id, req.caller),
  );
}
