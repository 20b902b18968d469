import type { Actor } from './actor.js';

/**
 * The one place that decides which secret names a caller may see. Admins and unrestricted
 * access keys see every name; a restricted access key sees exact names and PREFIX_*
 * patterns; an unauthenticated caller sees none. The list SQL, the guard, export and
 * render all ask here (the SQL form is `visibilitySql`).
 */
export type Visibility =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'patterns'; readonly exact: readonly string[]; readonly prefixes: readonly string[] };

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

export function visibilityOf(actor: Actor): Visibility {
  if (actor.kind === 'admin' || actor.patterns === null) return { kind: 'all' };
  return { kind: 'patterns', ...splitPatterns(actor.patterns) };
}

export function maySee(v: Visibility, key: string): boolean {
  if (v.kind === 'all') return true;
  if (v.kind === 'none') return false;
  return v.exact.includes(key) || v.prefixes.some((p) => key.startsWith(p));
}

/**
 * A SQL condition over the column `col`, with its parameters appended to `params`; null
 * when every name is visible.
 */
export function visibilitySql(v: Visibility, col: string, params: unknown[]): string | null {
  if (v.kind === 'all') return null;
  if (v.kind === 'none') return 'false';
  params.push([...v.exact], [...v.prefixes]);
  const e = params.length - 1;
  return `(${col} = ANY($${e}::text[]) OR EXISTS (SELECT 1 FROM unnest($${e + 1}::text[]) p WHERE starts_with(${col}, p)))`;
}
