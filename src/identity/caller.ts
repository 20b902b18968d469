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
}

/** Where a request came from, as the HTTP layer saw it. */
export interface Origin {
  requestId: string;
  /** True when the request id was the client's own X-Request-Id. */
  clientRequestId: boolean;
  clientIp: string;
}

/** The request as far as a caller needs it (a FastifyRequest is one). */
export interface RequestLike {
  id: string;
  ip: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The caller for a request, authenticated (`actor`) or not (null: anonymous, sees nothing). */
export function callerOf(req: RequestLike, actor: Actor | null): Caller {
  return callerFor(actor, {
    requestId: req.id,
    clientRequestId: req.headers['x-request-id'] === req.id,
    clientIp: req.ip,
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
    ...origin,
  };
}

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
  };
}
