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
    };

/** The identity written to audit rows and used as the per-identity rate-limit key. */
export function actorId(a: Actor | null): string {
  if (!a) return 'anonymous';
  return a.kind === 'admin' ? `admin:${a.sub}` : `access_key:${a.id}`;
}

/** What lastUsedBy shows: the admin's sub (as before), or the access key's name. */
export function actorLabel(a: Actor): string {
  return a.kind === 'admin' ? a.sub : `access_key:${a.name}`;
}

export function hasScope(a: Actor, scope: Scope): boolean {
  return a.kind === 'admin' || a.scopes.includes(scope);
}
