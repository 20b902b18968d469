import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessKeyService } from '../access-keys/service.js';
import type { AuditAction, AuditContext } from '../audit/entry.js';
import type { AuditRepository } from '../audit/repository.js';
import type { Database } from '../db/database.js';
import { AppError, errors } from '../http/errors.js';
import type { Limits } from '../http/rate-limits.js';
import { type Actor, actorId, hasScope, mayTouchKey, type Scope } from './actor.js';
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
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export function auditContext(req: FastifyRequest): AuditContext {
  return { actor: actorId(req.actor), requestId: req.id, clientIp: req.ip };
}

const paramKey = (req: FastifyRequest): string | null => {
  const k = (req.params as { key?: unknown } | undefined)?.key;
  return typeof k === 'string' && k.length <= 128 ? k : null;
};

const forbidden = (message: string, nextActions: string) =>
  new AppError(403, 'AUTH_UNAUTHORIZED', message, nextActions);

export interface GuardDeps {
  db: Database;
  audit: AuditRepository;
  accessKeys: AccessKeyService;
  limits: Limits;
}

/**
 * Installs authentication and authorisation on every route of the scope it is called in:
 * onRequest authenticates (admin JWT or ik_ access key, before the body is parsed, so
 * unauthenticated callers learn nothing about the schema) and checks scope and admin-only;
 * preHandler, once the body is validated, checks the secret key against the key patterns
 * and applies the read limit. Every refusal leaves one audit row.
 */
export function installGuard(scope: FastifyInstance, deps: GuardDeps) {
  const { db, audit, accessKeys, limits } = deps;

  async function record(req: FastifyRequest, action: AuditAction, outcome: string, key: string | null) {
    try {
      await audit.append(db, { ...auditContext(req), action, key, outcome });
    } catch (err) {
      // The request is refused either way; losing the row of a refusal must not turn it into a 500.
      req.log.error(
        { errName: (err as Error).name, errCode: (err as { code?: unknown }).code },
        'audit write failed',
      );
    }
  }

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
      return accessKeys.authenticate(apiKey);
    }
    if (!hasAuth) throw errors.noCredentials();
    // The scheme is matched exactly: anything but "Bearer <token>" is refused rather than guessed at.
    const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(auth);
    if (!m?.[1]) throw errors.badToken('expected the header "Authorization: Bearer <token>"');
    return m[1].startsWith('ik_') ? accessKeys.authenticate(m[1]) : scope.verifyAdminJwt(m[1]);
  }

  scope.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access ?? { adminOnly: true };
    let actor: Actor;
    try {
      actor = await identify(req);
    } catch (err) {
      if (err instanceof AppError && err.statusCode === 401) {
        // A blocked address's failures are refused before any audit write or count: cheap,
        // and they do not extend the block. A credential that verifies never gets here.
        await limits.checkAuthFailures(req);
        await limits.countAuthFailure(req);
        await record(req, 'auth.failed', 'unauthenticated', paramKey(req));
      } else if (err instanceof AppError && err.statusCode === 403 && access.action) {
        await record(req, access.action, 'denied', paramKey(req));
      }
      throw err;
    }
    req.actor = actor;
    if (actor.kind === 'admin') return;
    if (access.adminOnly) {
      if (access.action) await record(req, access.action, 'denied', paramKey(req));
      throw forbidden(
        `Admin access required: access key "${actor.name}" cannot use ${req.method} ${req.routeOptions.url}`,
        'Use an admin token for this endpoint',
      );
    }
    if (access.scope && !hasScope(actor, access.scope)) {
      if (access.action) await record(req, access.action, 'denied', paramKey(req));
      throw forbidden(
        `Access key "${actor.name}" lacks the scope ${access.scope} (it has: ${actor.scopes.join(', ') || 'none'})`,
        `Create an access key with the ${access.scope} scope, or use an admin token`,
      );
    }
  });

  scope.addHook('preHandler', async (req) => {
    const access = req.routeOptions.config.access;
    const actor = req.actor;
    if (!access || !actor) return;
    const adminReason = actor.kind === 'access_key' ? (access.adminOnlyWhen?.(req) ?? null) : null;
    if (adminReason !== null && actor.kind === 'access_key') {
      if (access.action) await record(req, access.action, 'denied', paramKey(req));
      throw forbidden(
        `Admin access required: access key "${actor.name}" cannot ${adminReason}`,
        'Use an admin token for this operation',
      );
    }
    if (access.keyFrom && actor.kind === 'access_key') {
      const key =
        access.keyFrom === 'params' ? paramKey(req) : String((req.body as { key?: unknown }).key ?? '');
      if (key !== null && !mayTouchKey(actor, key)) {
        if (access.action) await record(req, access.action, 'denied', key);
        throw forbidden(
          `Access key "${actor.name}" may not access secret ${key} (allowed: ${(actor.keys ?? []).join(', ')})`,
          'Use an access key whose keys include this secret, or an admin token',
        );
      }
    }
    if (access.readLimit) await limits.read(req);
  });
}
