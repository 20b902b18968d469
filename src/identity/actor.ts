/** Who is calling: stamped on the request by the authenticate step, used for checks, lastUsedBy and audit. */

/**
 * Access-key scopes (also what workload grants carry). `secrets:inject` is the one scope an
 * admin JWT does not imply: it lets export, render, batch comparisons and `secrets run`
 * hand write-only values to a workload (together with `secrets:read`), so that a person
 * signed in as admin never receives them by accident. An admin may still mint an access key
 * holding it: the audit trail, not the scope, is the control there (README, Security).
 */
export const SCOPES = [
  'secrets:read',
  'secrets:write',
  'secrets:delete',
  'secrets:list',
  'secrets:inject',
] as const;
export type Scope = (typeof SCOPES)[number];
export const INJECT_SCOPE = 'secrets:inject' satisfies Scope;

export type Actor =
  | { kind: 'admin'; sub: string }
  | {
      kind: 'access_key';
      id: string;
      name: string;
      scopes: readonly Scope[];
      /** The secret names this access key reaches: null for every key; otherwise exact names or PREFIX_* patterns. */
      patterns: readonly string[] | null;
      /** The environments it covers: names, or null for every one (`*`). */
      environments: readonly string[] | null;
      /**
       * Set for a workload credential (iw_, from an OIDC token exchange): it acts as an access
       * key with its trust's grant and is named `oidc:<trust>:<sub>` in audit rows.
       */
      workload?: { trust: string; sub: string };
    };

/** The identity written to audit rows and used as the per-identity rate-limit key. */
export function actorId(a: Actor | null): string {
  if (!a) return 'anonymous';
  if (a.kind === 'admin') return `admin:${a.sub}`;
  return a.workload ? workloadId(a.workload.trust, a.workload.sub) : `access_key:${a.id}`;
}

/** The audit identity of a workload: which trust let it in, and which pipeline/pod it is. */
export const workloadId = (trust: string, sub: string) => `oidc:${trust}:${sub}`;

/** What lastUsedBy shows: the admin's sub (as before), or the access key's name. */
export function actorLabel(a: Actor): string {
  if (a.kind === 'admin') return a.sub;
  return a.workload ? a.name : `access_key:${a.name}`;
}

/** Admins hold every scope but secrets:inject, which only a credential that names it holds. */
export function hasScope(a: Actor, scope: Scope): boolean {
  if (a.kind === 'admin') return scope !== INJECT_SCOPE;
  return a.scopes.includes(scope);
}

/** A stored environment list (names, or `*` among them) as an actor carries it: null for every one. */
export const environmentGrant = (stored: readonly string[]): readonly string[] | null =>
  stored.includes('*') ? null : stored;

/** Whether the actor may address environment `env` at all (admins: every one). */
export function coversEnvironment(a: Actor, env: string): boolean {
  if (a.kind === 'admin' || a.environments === null) return true;
  return a.environments.includes(env);
}
