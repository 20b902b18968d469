import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { routeOptions } from '../http/route-options.js';
import { errorResponse, errorResponses } from '../http/schemas.js';
import { callerOf } from '../identity/caller.js';
import { tokenExchangeBody, tokenExchangeResponse, trustBody, trustParams, trustView } from './schemas.js';
import type { OidcService } from './service.js';

/** Trust policy management: admin JWT only (the guard enforces config.access.adminOnly). */
export async function trustRoutes(app: FastifyInstance, opts: { oidc: OidcService }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { oidc } = opts;
  const { admin } = routeOptions(['Workload identity']);

  r.post(
    '/api/auth/trusts',
    admin('oidc_trust.create', {
      summary: 'Create a trust policy',
      description:
        'Lets workloads whose OIDC ID tokens (GitHub Actions, GitLab CI, Kubernetes) match the bindings exchange them at POST /api/auth/token for a short-lived credential with this grant.',
      body: trustBody,
      response: { 201: trustView, 409: errorResponse },
    }),
    async (req, reply) => reply.code(201).send(await oidc.create(req.body, req.caller)),
  );

  r.get(
    '/api/auth/trusts',
    admin('oidc_trust.list', {
      summary: 'List trust policies',
      response: { 200: z.object({ trusts: z.array(trustView) }) },
    }),
    async (req) => ({ trusts: await oidc.list(req.caller) }),
  );

  r.get(
    '/api/auth/trusts/:name',
    admin('oidc_trust.list', {
      summary: 'Read a trust policy',
      params: trustParams,
      response: { 200: trustView, 404: errorResponse },
    }),
    async (req) => oidc.get(req.params.name, req.caller),
  );

  r.put(
    '/api/auth/trusts/:name',
    admin('oidc_trust.update', {
      summary: 'Replace a trust policy',
      description:
        'Applies to later exchanges; credentials already issued keep the grant they were issued with until they expire (at most 1 hour).',
      params: trustParams,
      body: trustBody,
      response: { 200: trustView, 404: errorResponse, 409: errorResponse },
    }),
    async (req) => oidc.update({ name: req.params.name, trust: req.body }, req.caller),
  );

  r.delete(
    '/api/auth/trusts/:name',
    admin('oidc_trust.delete', {
      summary: 'Delete a trust policy',
      description: 'Takes effect at once: credentials it issued are refused from the next request on.',
      params: trustParams,
      response: { 200: trustView, 404: errorResponse },
    }),
    async (req) => oidc.remove(req.params.name, req.caller),
  );
}

/**
 * POST /api/auth/token (RFC 8693), outside the guard: the ID token is the credential. In
 * its own scope so that the form-body parser it needs (RFC 8693 requests are form-encoded)
 * reaches no other route: the rest of the API stays JSON only.
 */
export async function tokenExchangeRoutes(
  app: FastifyInstance,
  opts: {
    oidc: OidcService;
    /** Refusals count against the per-address failed-authentication limit, as bad tokens do. */
    checkFailures: (req: FastifyRequest) => Promise<void>;
    countFailure: (req: FastifyRequest) => Promise<void>;
  },
) {
  await app.register(formbody, { bodyLimit: 32 * 1024 });
  app.withTypeProvider<ZodTypeProvider>().post(
    '/api/auth/token',
    {
      schema: {
        tags: ['Workload identity'],
        summary: 'Exchange an OIDC ID token for a workload credential',
        description:
          'RFC 8693 token exchange, form-encoded or JSON. The ID token is verified against the JWKS of the issuer of a trust policy (RS256, ES256, EdDSA), must carry one of its audiences and match its subject and claims, and may be exchanged once. The answer is a short-lived credential (iw_...) usable wherever an access key is; every request made with it is audited as oidc:<trust>:<sub>.',
        body: tokenExchangeBody,
        response: { 200: tokenExchangeResponse, ...errorResponses(400, 401, 403, 415, 429, 503) },
      },
    },
    async (req) => {
      await opts.checkFailures(req);
      try {
        return await opts.oidc.exchange(req.body, callerOf(req, null));
      } catch (err) {
        if (err instanceof AppError && (err.statusCode === 401 || err.statusCode === 403)) {
          await opts.countFailure(req);
        }
        throw err;
      }
    },
  );
}
