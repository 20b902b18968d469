import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { type Actor, actorId, actorLabel, hasScope, INJECT_SCOPE } from './actor.js';
import { type Visibility, visibilityOf } from './visibility.js';

/**
 * Who is asking, built once per request by the guard and passed explicitly to every
 * service call: the audit identity, the label lastUsedBy/createdBy show, the secret names
 * the caller may see, and where the request came from.
 */
export interface Caller {
  /** `admin:<sub>`, `access_key:<id>`, `oidc:<trust>:<sub>` or `anonymous`: the audit row's actor. */
  readonly actor: string;
  /** What lastUsedBy and createdBy show: the admin's sub, or `access_key:<name>`. */
  readonly label: string;
  readonly visible: Visibility;
  /** An admin JWT: the rules only an admin may pass (making an existing secret write-only). */
  readonly admin: boolean;
  /** Holds secrets:inject: export, render and batch comparisons may hand it write-only values. */
  readonly mayInject: boolean;
  readonly requestId: string;
  /** True when the request id was the client's own X-Request-Id (not generated here). */
  readonly clientRequestId: boolean;
  readonly clientIp: string;
  /**
   * The environment the request addresses (/api/secrets...: default; /api/environments/:env/...:
   * that one), written to its audit rows; null for routes outside environments. Set from the
   * route (its config.access.environment) before authentication, so refusals carry it too.
   */
  readonly environment: string | null;
  /** The environments the caller covers: null for every one (admins, `*` grants). */
  readonly environments: readonly string[] | null;
}

/** The environment a route addresses (config.access.environment, src/auth/guard.ts). */
function routeEnvironment(req: RequestLike): string | null {
  const where = req.routeOptions?.config?.access?.environment;
  if (where === 'default') return DEFAULT_ENVIRONMENT;
  if (where !== 'param') return null;
  const env = (req.params as { env?: unknown } | undefined)?.env;
  return typeof env === 'string' ? env : null;
}

/** Where a request came from, as the HTTP layer saw it. */
export interface Origin {
  requestId: string;
  /** True when the request id was the client's own X-Request-Id. */
  clientRequestId: boolean;
  clientIp: string;
  /** The environment the route addresses (null: a route outside environments). */
  environment: string | null;
}

/** The request as far as a caller needs it (a FastifyRequest is one). */
export interface RequestLike {
  id: string;
  ip: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  params?: unknown;
  routeOptions?: { config?: { access?: { environment?: string | undefined } | undefined } };
}

/** The caller for a request, authenticated (`actor`) or not (null: anonymous, sees nothing). */
export function callerOf(req: RequestLike, actor: Actor | null): Caller {
  return callerFor(actor, {
    requestId: req.id,
    clientRequestId: req.headers['x-request-id'] === req.id,
    clientIp: req.ip,
    environment: routeEnvironment(req),
  });
}

/** The caller for an authenticated `actor`, or for nobody (null: anonymous, sees nothing). */
export function callerFor(actor: Actor | null, origin: Origin): Caller {
  return {
    actor: actorId(actor),
    label: actor ? actorLabel(actor) : 'anonymous',
    visible: actor ? visibilityOf(actor) : { kind: 'none' },
    admin: actor?.kind === 'admin',
    mayInject: actor ? hasScope(actor, INJECT_SCOPE) : false,
    environments: actor ? (actor.kind === 'admin' ? null : actor.environments) : [],
    ...origin,
  };
}

/** The environment a secret operation works in: the caller's, or default (work no route started). */
export const environmentOf = (caller: Caller): string => caller.environment ?? DEFAULT_ENVIRONMENT;

/** The same caller addressing another environment (compare and promote touch two). */
export const inEnvironment = (caller: Caller, environment: string): Caller => ({ ...caller, environment });

/** A caller for work that no HTTP request started (CLI, background jobs). */
export function systemCaller(name: string, requestId: string): Caller {
  return {
    actor: `system:${name}`,
    label: `system:${name}`,
    visible: { kind: 'all' },
    admin: false,
    // Background work (re-wrap) opens values but hands none out.
    mayInject: false,
    requestId,
    clientRequestId: false,
    clientIp: '',
    environment: null,
    environments: null,
  };
}
