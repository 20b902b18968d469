import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../errors.js';
import { resourceRoutes } from '../http/resource-routes.js';
import { errorResponses } from '../http/schemas.js';
import { callerOf } from '../identity/caller.js';
import { tokenExchangeBody, tokenExchangeResponse, trustBody, trustParams, trustView } from './schemas.js';
import type { OidcService } from './service.js';

/** Trust policy management: admin JWT only (the guard enforces config.access.adminOnly). */
export async function trustRoutes(app: FastifyInstance, { oidc }: { oidc: OidcService }) {
  const trusts = resourceRoutes(app, {
    tags: ['Workload identity'],
    path: '/api/auth/trusts',
    noun: 'oidc_trust',
    params: trustParams,
    view: trustView,
  });

  trusts.create(
    {
      summary: 'Create a trust policy',
      description:
        'Lets workloads whose OIDC ID tokens (GitHub Actions, GitLab CI, Kubernetes) match the bindings exchange them at POST /api/auth/token for a short-lived credential with this grant.',
      body: trustBody,
      conflict: true,
    },
    (req) => oidc.create(req.body, req.caller),
  );

  trusts.list({ summary: 'List trust policies', field: 'trusts' }, async (req) => ({
    trusts: await oidc.list(req.caller),
  }));

  trusts.get({ summary: 'Read a trust policy' }, (req) => oidc.get(req.params.name, req.caller));

  trusts.replace(
    {
      summary: 'Replace a trust policy',
      description:
        'Applies to later exchanges; credentials already issued keep the grant they were issued with until they expire (at most 1 hour).',
      body: trustBody,
      conflict: true,
    },
    (req) => oidc.update({ name: req.params.name, trust: req.body }, req.caller),
  );

  trusts.delete(
    {
      summary: 'Delete a trust policy',
      description: 'Takes effect at once: credentials it issued are refused from the next request on.',
    },
    (req) => oidc.remove(req.params.name, req.caller),
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
