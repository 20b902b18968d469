import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessKeyService } from '../access-keys/service.js';
import type { AuditAction } from '../audit/entry.js';
import type { AuditTrail } from '../audit/trail.js';
import { DEFAULT_ENVIRONMENT, isEnvironmentName } from '../environment-names.js';
import type { EnvironmentService } from '../environments/service.js';
import { AppError, errors } from '../errors.js';
import { toAppError } from '../http/error-handler.js';
import type { Limits } from '../http/rate-limits.js';
import { type Actor, coversEnvironment, hasScope, type Scope } from '../identity/actor.js';
import { type Caller, callerOf } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import type { OidcService } from '../oidc/service.js';
import { countHeader } from './jwt.js';

/** What a route declares about itself in `config.access`; the guard enforces it. */
export interface RouteAccess {
  /** The audit action a denial is recorded as (omitted: denials are not audited). */
  action?: AuditAction;
  /** Required scope for access keys (admins have every scope). */
  scope?: Scope;
  /** Admin JWT only: access keys get 403. */
  adminOnly?: boolean;
  /** Where the secret key named by the request is: checked against the access key's patterns. */
  keyFrom?: 'params' | 'body';
  /** Counts against the per-identity value-read limit. */
  readLimit?: boolean;
  /**
   * Admin only for this request when it returns a reason (checked once the body and query
   * are validated): the irreversible operations no access-key scope implies.
   */
  adminOnlyWhen?: (req: FastifyRequest) => string | null;
  /**
   * The environment the route addresses: 'default' (the /api/secrets API) or 'param' (the
   * :env path parameter). The guard refuses an access key that does not cover it (403,
   * before anything about it is looked up) and answers 404 for one that does not exist.
   */
  environment?: 'default' | 'param';
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /**
     * Who is asking, built once by the guard (anonymous until authenticated). Set on every
     * route of the secured scope; routes outside it (login, health) must use callerOf.
     */
    caller: Caller;
  }
}

/** The answers that count against REFUSAL_RATE_LIMIT (src/http/rate-limits.ts). */
const COUNTED_REFUSALS: ReadonlySet<number> = new Set([400, 403, 413, 415, 429]);

/** The one default: a route that declares no `config.access` is admin-only (denied by default). */
const ADMIN_ONLY: RouteAccess = { adminOnly: true };
export const routeAccess = (config: { access?: RouteAccess } | undefined): RouteAccess =>
  config?.access ?? ADMIN_ONLY;
/** Whether an access key may call the route at all (its scope and patterns are checked per request). */
export const acceptsAccessKeys = (config: { access?: RouteAccess } | undefined): boolean =>
  routeAccess(config).adminOnly !== true;

/**
 * The key a refused request named, as sent (path parameter, else the body's `key`), for its
 * audit row: whatever it holds, the audit repository records it escaped and bounded
 * (src/storable-text.ts), so a key the schema refused (NUL, over-long) still names the attempt.
 */
const sentKey = (req: FastifyRequest): string | null => {
  const fromParams = (req.params as { key?: unknown } | undefined)?.key;
  if (typeof fromParams === 'string') return fromParams;
  const fromBody = (req.body as { key?: unknown } | null | undefined)?.key;
  return typeof fromBody === 'string' ? fromBody : null;
};

const paramKey = (req: FastifyRequest): string | null => {
  const k = (req.params as { key?: unknown } | undefined)?.key;
  return typeof k === 'string' && k.length <= 128 ? k : null;
};

export interface GuardDeps {
  trail: AuditTrail;
  accessKeys: AccessKeyService;
  /** Workload tokens (iw_, from POST /api/auth/token): accepted wherever an access key is. */
  workloads: Pick<OidcService, 'authenticate'>;
  limits: Limits;
  /** Whether a named environment exists (for the 404 of /api/environments/:env/...). */
  environments: Pick<EnvironmentService, 'exists'>;
}

/**
 * Installs authentication and authorisation on every route of the scope it is called in:
 * onRequest authenticates (admin JWT or ik_ access key, before the body is parsed, so
 * unauthenticated callers learn nothing about the schema) and checks scope and admin-only;
 * preHandler, once the body is validated, checks the secret key against the key patterns
 * and applies the read limit. Every refusal leaves one audit row.
 */
export function installGuard(scope: FastifyInstance, deps: GuardDeps) {
  const { trail, accessKeys, workloads, limits, environments } = deps;
  const byKind = (token: string) =>
    token.startsWith('iw_') ? workloads.authenticate(token) : accessKeys.authenticate(token);

  /** Records the refusal (one row, with the outcome the error maps to) and throws it. */
  async function refuse(req: FastifyRequest, action: AuditAction, key: string | null, err: unknown) {
    await trail.refused(req.caller, action, [key], err);
    throw err;
  }

  /** Requests answered by the refusal limit itself: not counted again. */
  const overLimit = new WeakSet<FastifyRequest>();

  async function identify(req: FastifyRequest): Promise<Actor> {
    const auth = req.headers.authorization;
    const apiKey = req.headers['x-api-key'];
    const hasAuth = auth !== undefined && auth !== '';
    const hasApiKey = apiKey !== undefined && apiKey !== '';
    // Node keeps only the first of repeated Authorization (or x-api-key) headers; a proxy may
    // have checked another one. Ambiguous credentials are refused rather than resolved.
    if (
      countHeader(req.raw.rawHeaders, 'authorization') > 1 ||
      countHeader(req.raw.rawHeaders, 'x-api-key') > 1
    ) {
      throw errors.badToken('send exactly one Authorization or x-api-key header');
    }
    if (hasAuth && hasApiKey) {
      throw errors.badToken('send either Authorization or x-api-key, not both');
    }
    if (hasApiKey) {
      if (typeof apiKey !== 'string') throw errors.badToken('send one x-api-key header');
      return byKind(apiKey);
    }
    if (!hasAuth) throw errors.noCredentials();
    // The scheme is matched exactly: anything but "Bearer <token>" is refused rather than guessed at.
    const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(auth);
    if (!m?.[1]) throw errors.badToken('expected the header "Authorization: Bearer <token>"');
    return m[1].startsWith('ik_') || m[1].startsWith('iw_') ? byKind(m[1]) : scope.verifyAdminJwt(m[1]);
  }

  scope.addHook('onRequest', async (req) => {
    const access = routeAccess(req.routeOptions.config);
    req.caller = callerOf(req, null);
    let actor: Actor;
    try {
      actor = await identify(req);
    } catch (err) {
      if (err instanceof AppError && err.statusCode === 401) {
        // A blocked address's failures are refused before any audit write or count: cheap,
        // and they do not extend the block. A credential that verifies never gets here.
        await limits.checkAuthFailures(req);
        await limits.countAuthFailure(req);
        return refuse(req, 'auth.failed', paramKey(req), err);
      }
      if (access.action) return refuse(req, access.action, paramKey(req), err);
      throw err;
    }
    req.actor = actor;
    req.caller = callerOf(req, actor);
    const deny = (err: AppError) =>
      access.action ? refuse(req, access.action, paramKey(req), err) : Promise.reject(err);
    // An identity refused too often this minute is answered before anything else is done
    // for it (its body is not read): at most one peek at a counter, none for an identity
    // this instance has not seen reach the limit. The answer that crossed the limit leaves
    // its own audit row; the rest of the window is counted in the identity's summary row
    // (src/audit/suppressed.ts), so a flood writes one row, not one per request.
    const over = await limits.overRefusals(req);
    if (over) {
      overLimit.add(req);
      if (over.audit && access.action) return deny(over.error);
      // A route whose denials are not audited: the crossing answer is summarised too.
      if (over.audit) limits.suppressedRefusal(req);
      throw over.error;
    }
    const env = req.caller.environment;
    if (env !== null && env !== DEFAULT_ENVIRONMENT) {
      // Coverage first, so a credential learns nothing about an environment it does not
      // cover, not even whether it exists.
      if (actor.kind === 'access_key' && !coversEnvironment(actor, env)) {
        return deny(
          errors.denied(
            `Access key "${actor.name}" does not cover the environment ${env}`,
            'Use an access key whose environments include it, or an admin token',
          ),
        );
      }
      if (!isEnvironmentName(env) || !(await environments.exists(env)))
        return deny(errors.environmentNotFound(env));
    } else if (env === DEFAULT_ENVIRONMENT && actor.kind === 'access_key' && !coversEnvironment(actor, env)) {
      return deny(
        errors.denied(
          `Access key "${actor.name}" does not cover the default environment (/api/secrets)`,
          'Use the /api/environments/{env}/secrets routes of an environment it covers, or an access key that covers default',
        ),
      );
    }
    if (actor.kind === 'admin') return;
    if (access.adminOnly) {
      return deny(
        errors.denied(
          `Admin access required: access key "${actor.name}" cannot use ${req.method} ${req.routeOptions.url}`,
          'Use an admin token for this endpoint',
        ),
      );
    }
    if (access.scope && !hasScope(actor, access.scope)) {
      return deny(
        errors.denied(
          `Access key "${actor.name}" lacks the scope ${access.scope} (it has: ${actor.scopes.join(', ') || 'none'})`,
          `Create an access key with the ${access.scope} scope, or use an admin token`,
        ),
      );
    }
  });

  scope.addHook('preHandler', async (req) => {
    const access = req.routeOptions.config.access;
    const actor = req.actor;
    if (!access || !actor) return;
    const adminReason = actor.kind === 'access_key' ? (access.adminOnlyWhen?.(req) ?? null) : null;
    if (adminReason !== null && actor.kind === 'access_key') {
      const err = errors.denied(
        `Admin access required: access key "${actor.name}" cannot ${adminReason}`,
        'Use an admin token for this operation',
      );
      if (access.action) return refuse(req, access.action, paramKey(req), err);
      throw err;
    }
    if (access.keyFrom && actor.kind === 'access_key') {
      const key =
        access.keyFrom === 'params' ? paramKey(req) : String((req.body as { key?: unknown }).key ?? '');
      if (key !== null && !maySee(req.caller.visible, key)) {
        const err = errors.denied(
          `Access key "${actor.name}" may not access secret ${key} (allowed: ${(actor.patterns ?? []).join(', ')})`,
          'Use an access key whose keys include this secret, or an admin token',
        );
        if (access.action) return refuse(req, access.action, key, err);
        throw err;
      }
    }
    if (access.readLimit) {
      try {
        await limits.countRead(req);
      } catch (err) {
        if (access.action) return refuse(req, access.action, paramKey(req), err);
        throw err;
      }
    }
  });

  // Every refusal of an authenticated caller counts against REFUSAL_RATE_LIMIT: bad input,
  // denials, bodies too large, other limits. Not 404/409/412: a missing secret, a conflict
  // or a stale ETag are ordinary answers to well-behaved callers.
  scope.addHook('onResponse', (req, reply, done) => {
    if (req.actor && COUNTED_REFUSALS.has(reply.statusCode) && !overLimit.has(req)) {
      limits.countRefusal(req).catch((err: unknown) => req.log.warn({ err }, 'refusal not counted'));
    }
    done();
  });

  // A request the guard let in but the framework refused before any service ran (the route
  // schema: a NUL or over-long key, a missing field; the body: not JSON, too large) leaves
  // its one row too, with the key it sent escaped and bounded. Refusals of the guard and the
  // services are AppErrors that already left theirs. The global handler then answers.
  scope.setErrorHandler(async (err: unknown, req: FastifyRequest) => {
    const action = routeAccess(req.routeOptions.config).action;
    if (action && req.actor && !(err instanceof AppError)) {
      const appErr = toAppError(err);
      if (appErr.statusCode >= 400 && appErr.statusCode < 500) {
        await trail.refused(req.caller, action, [sentKey(req)], appErr);
      }
    }
    throw err;
  });
}

/**
 * Documents each route of a guarded scope with the credentials it takes, derived from the
 * guard's own rule (no `config.access` means admin-only): an admin JWT
 * always, an access key (bearer or x-api-key) where the guard lets one in.
 */
export function documentSecurity(scope: FastifyInstance) {
  scope.addHook('onRoute', (route) => {
    route.schema = {
      ...route.schema,
      security: acceptsAccessKeys(route.config) ? [{ bearerAuth: [] }, { apiKey: [] }] : [{ bearerAuth: [] }],
    };
  });
}
