/** Who is calling: stamped on the request by the authenticate step, used for checks, lastUsedBy and audit. */

export const SCOPES = ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'] as const;
export type Scope = (typeof SCOPES)[number];

export type Actor =
  | { kind: 'admin'; sub: string }
  | {
      kind: 'access_key';
      id: string;
      name: string;
      scopes: readonly Scope[];
      /** The secret names this access key reaches: null for every key; otherwise exact names or PREFIX_* patterns. */
      patterns: readonly string[] | null;
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

export function hasScope(a: Actor, scope: Scope): boolean {
  return a.kind === 'admin' || a.scopes.includes(scope);
}
