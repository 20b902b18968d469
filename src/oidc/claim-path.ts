/**
 * Which claim a trust's `claims` binding names. A key without a leading "/" is a top-level
 * claim, as in `repository_id` or `ref`. A key with one is a JSON Pointer (RFC 6901) into the
 * token's payload, for claims nested in objects, as Kubernetes nests them:
 * `/kubernetes.io/namespace`, `/kubernetes.io/serviceaccount/name`. This is the syntax
 * Vault's JWT auth takes in `bound_claims`. A "/" inside a segment is written "~1", a "~"
 * as "~0" (so `kubernetes.io` needs no escape); a segment of digits indexes an array.
 */

const NAME = '[A-Za-z0-9_.:-][A-Za-z0-9_.:/-]{0,127}';
const SEGMENT = '(?:[A-Za-z0-9_.:-]|~[01]){1,128}';
/** A top-level claim name, or a pointer of 1 to 8 non-empty segments. */
export const CLAIM_KEY_RE = new RegExp(`^(?:${NAME}|(?:/${SEGMENT}){1,8})$`);

export const CLAIM_KEY_ERROR =
  'each claim binding names a claim (1-128 letters, digits, "_", ".", ":", "-" or "/", not starting with "/") ' +
  'or a nested claim as a JSON Pointer of 1-8 segments (e.g. /kubernetes.io/namespace; "~1" stands for "/" and "~0" for "~" in a segment)';

/** The value the binding `key` names in `payload`, or undefined when there is none. */
export function claimAt(payload: Record<string, unknown>, key: string): unknown {
  if (!key.startsWith('/')) return Object.hasOwn(payload, key) ? payload[key] : undefined;
  let at: unknown = payload;
  for (const raw of key.slice(1).split('/')) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(at)) {
      if (!/^(0|[1-9][0-9]*)$/.test(segment)) return undefined;
      at = at[Number(segment)];
    } else if (typeof at === 'object' && at !== null && Object.hasOwn(at, segment)) {
      at = (at as Record<string, unknown>)[segment];
    } else return undefined;
  }
  return at;
}
