import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorLabel } from '../auth/actor.js';
import { auditContext } from '../auth/guard.js';
import {
  createBody,
  errorResponse,
  keyParams,
  listQuery,
  secretMetadata,
  successResponse,
  updateBody,
} from './schemas.js';
import type { SecretService, Who } from './service.js';

const who = (req: FastifyRequest): Who => ({ ...auditContext(req), label: actorLabel(req.actor!) });

/** HTTP only: schema, guard (from the enclosing scope) and one service call per route. */
export async function secretRoutes(app: FastifyInstance, opts: { secrets: SecretService }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { secrets } = opts;
  const errs = {
    400: errorResponse,
    401: errorResponse,
    403: errorResponse,
    404: errorResponse,
    429: errorResponse,
    503: errorResponse,
  };
  const tags = ['Secrets'];

  r.get(
    '/api/secrets',
    {
      config: { access: { action: 'secret.list', scope: 'secrets:list' } },
      schema: {
        tags,
        summary: 'List secrets',
        description:
          'Metadata of all secrets, inactive ones included, newest first; never values. Without limit at most 1000 are returned; follow nextCursor for the next page.',
        querystring: listQuery,
        response: {
          200: z.object({ secrets: z.array(secretMetadata), nextCursor: z.string().nullable() }),
          ...errs,
        },
      },
    },
    async (req) => {
      const actor = req.actor!;
      return secrets.list(req.query, who(req), actor.kind === 'access_key' ? actor.keys : null);
    },
  );

  r.post(
    '/api/secrets',
    {
      config: { access: { action: 'secret.create', scope: 'secrets:write', keyFrom: 'body' } },
      schema: {
        tags,
        summary: 'Create a secret',
        description:
          'Encrypts and stores a new secret. A key that exists only soft-deleted is revived with the new value.',
        body: createBody,
        response: {
          201: z.object({ success: z.literal(true), message: z.string(), id: z.uuid() }),
          409: errorResponse,
          413: errorResponse,
          ...errs,
        },
      },
    },
    async (req, reply) => {
      const { id } = await secrets.create(req.body, who(req));
      return reply
        .code(201)
        .send({ success: true, message: `Secret ${req.body.key} has been created successfully`, id });
    },
  );

  r.get(
    '/api/secrets/:key',
    {
      config: {
        access: { action: 'secret.read', scope: 'secrets:read', keyFrom: 'params', readLimit: true },
      },
      schema: {
        tags,
        summary: 'Get a secret value',
        description:
          'Decrypts and returns the value; records lastUsedAt/lastUsedBy. Inactive or expired secrets answer 404.',
        params: keyParams,
        response: {
          200: z.object({ key: z.string(), value: z.string() }),
          500: errorResponse,
          ...errs,
        },
      },
    },
    async (req) => secrets.reveal(req.params.key, who(req)),
  );

  r.put(
    '/api/secrets/:key',
    {
      config: { access: { action: 'secret.update', scope: 'secrets:write', keyFrom: 'params' } },
      schema: {
        tags,
        summary: 'Update a secret',
        description:
          'Changes the value (stored as a new version) and/or metadata. expiresAt null clears the expiry.',
        params: keyParams,
        body: updateBody,
        response: { 200: successResponse, 413: errorResponse, ...errs },
      },
    },
    async (req) => {
      await secrets.update(req.params.key, req.body, who(req));
      return { success: true as const, message: `Secret ${req.params.key} has been updated successfully` };
    },
  );

  r.delete(
    '/api/secrets/:key',
    {
      config: { access: { action: 'secret.delete', scope: 'secrets:delete', keyFrom: 'params' } },
      schema: {
        tags,
        summary: 'Delete a secret (soft)',
        description:
          'Marks the secret inactive. Reserved secrets cannot be deleted. Deleting an inactive secret succeeds.',
        params: keyParams,
        response: { 200: successResponse, ...errs },
      },
    },
    async (req) => {
      await secrets.remove(req.params.key, who(req));
      return { success: true as const, message: `Secret ${req.params.key} has been deleted successfully` };
    },
  );
}
