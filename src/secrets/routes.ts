import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { routeOptions } from '../http/route-options.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import { keyedChanges } from './change-routes.js';
import { ifNoneMatchHit } from './etag.js';
import { generateValue } from './generate.js';
import { DEFAULT_BASE, type Mount } from './mount.js';
import {
  createBody,
  deleteQuery,
  ifNoneMatchHeaders,
  keyParams,
  listQuery,
  revealQuery,
  secretMetadata,
  updateBody,
} from './schemas.js';
import type { SecretService } from './service.js';

/** HTTP only: schema, guard (from the enclosing scope) and one service call per route. */
export async function secretRoutes(app: FastifyInstance, opts: { secrets: SecretService } & Mount) {
  const base = opts.base ?? DEFAULT_BASE;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { secrets } = opts;
  const { route } = routeOptions(['Secrets'], errorResponses(400, 401, 403, 404, 429, 503));
  const change = keyedChanges(app, route, base);

  r.get(
    base,
    route(
      { action: 'secret.list', scope: 'secrets:list' },
      {
        summary: 'List secrets',
        description:
          'Metadata of all secrets, inactive ones included, newest first; never values. Without limit at most 1000 are returned; follow nextCursor for the next page.',
        querystring: listQuery,
        response: { 200: z.object({ secrets: z.array(secretMetadata), nextCursor: z.string().nullable() }) },
      },
    ),
    async (req) => secrets.list(req.query, req.caller),
  );

  r.post(
    base,
    route(
      { action: 'secret.create', scope: 'secrets:write', keyFrom: 'body' },
      {
        summary: 'Create a secret',
        description:
          'Encrypts and stores a new secret. A key that exists only soft-deleted is revived with the new value (a write-only one stays write-only). Send generate in place of value to have the server make a crypto-random value, which is never returned; with isWriteOnly:true no person ever sees it.',
        body: createBody,
        response: {
          201: z.object({ success: z.literal(true), message: z.string(), id: z.uuid() }),
          409: errorResponse,
          413: errorResponse,
        },
      },
    ),
    async (req, reply) => {
      const { generate, ...body } = req.body;
      // Exactly one of value and generate is present (createBody checks it).
      const value = body.value ?? generateValue(generate!);
      const { id } = await secrets.create({ ...body, value }, req.caller);
      return reply
        .code(201)
        .send({ success: true, message: `Secret ${req.body.key} has been created successfully`, id });
    },
  );

  r.get(
    `${base}/:key`,
    route(
      { action: 'secret.read', scope: 'secrets:read', keyFrom: 'params', readLimit: true },
      {
        summary: 'Get a secret value',
        description:
          'Decrypts and returns the value (or, with ?version=N, a kept older version); records lastUsedAt/lastUsedBy. Inactive or expired secrets answer 404. A write-only secret answers 403 FORBIDDEN to every caller, admins included (audited as denied): workloads receive it through export or render with the secrets:inject scope. The ETag header names the current state, for If-Match; with If-None-Match naming it, the answer is 304 without a body (still an audited read).',
        params: keyParams,
        querystring: revealQuery,
        headers: ifNoneMatchHeaders,
        response: { 200: z.object({ key: z.string(), value: z.string() }), 500: errorResponse },
      },
    ),
    async (req, reply) => {
      const { key, value, etag } = await secrets.reveal(
        { key: req.params.key, version: req.query.version },
        req.caller,
      );
      reply.header('etag', etag);
      // The read is audited like any other (the caller learns the value is unchanged).
      if (ifNoneMatchHit(req.headers['if-none-match'], etag)) return reply.code(304).send(undefined as never);
      return { key, value };
    },
  );

  // Un-reserving and making a readable secret write-only are admin-only: the one rule for
  // every path checks them against the row (src/secrets/changes.ts), so re-sending
  // isReserved:false or isWriteOnly:true as it already is stays harmless.
  change(
    'PUT',
    '/:key',
    { action: 'secret.update', scope: 'secrets:write' },
    {
      summary: 'Update a secret',
      description:
        'Changes the value (stored as a new version) and/or metadata. expiresAt null clears the expiry. isReserved:false and isWriteOnly:true are admin-only (access keys: 403); isWriteOnly:false on a write-only secret is refused for everyone (403 FORBIDDEN: write-only cannot be undone). With If-Match, applies only if the secret is still in that state (else 412).',
      body: updateBody,
      response: { 413: errorResponse },
      change: (target, req) => secrets.update({ ...target, changes: req.body }, req.caller),
      done: 'updated successfully',
    },
  );

  change(
    'DELETE',
    '/:key',
    {
      action: 'secret.delete',
      scope: 'secrets:delete',
      // Purge erases every version for good: secrets:delete covers soft delete only.
      adminOnlyWhen: (req) =>
        (req.query as { purge?: unknown } | undefined)?.purge === true
          ? 'purge secrets (permanent erasure is admin-only)'
          : null,
    },
    {
      summary: 'Delete a secret (soft), or purge it',
      description:
        'Marks the secret inactive (restore it with POST /api/secrets/{key}/restore). Reserved secrets cannot be deleted. Deleting an inactive secret succeeds. ?purge=true erases an inactive, non-reserved secret and all its versions irreversibly (admin only: access keys get 403). Accepts If-Match.',
      querystring: deleteQuery,
      response: { 409: errorResponse },
      change: (target, req) => secrets.remove({ ...target, purge: req.query.purge }, req.caller),
      done: (req) => (req.query.purge ? 'purged permanently' : 'deleted successfully'),
    },
  );
}
