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
      /** null: every key; otherwise exact names or PREFIX_* patterns. */
      keys: readonly string[] | null;
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

/** Splits patterns into exact names and prefixes (`STRIPE_*` -> `STRIPE_`; `*` -> every key). */
export function splitPatterns(patterns: readonly string[]): { exact: string[]; prefixes: string[] } {
  const exact: string[] = [];
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.push(p);
  }
  return { exact, prefixes };
}

/** True when the actor may touch this secret key (admins and unrestricted keys: always). */
export function mayTouchKey(a: Actor, key: string): boolean {
  if (a.kind === 'admin' || a.keys === null) return true;
  const { exact, prefixes } = splitPatterns(a.keys);
  return exact.includes(key) || prefixes.some((p) => key.startsWith(p));
}

export function hasScope(a: Actor, scope: Scope): boolean {
  return a.kind === 'admin' || a.scopes.includes(scope);
}
