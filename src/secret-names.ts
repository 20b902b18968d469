/**
 * What a secret's name (its key) and a key prefix may be: the one home of the rule, used
 * by the route schemas (src/secrets/schemas.ts, bulk-schemas.ts) and the command line
 * (src/cli/secrets.ts checks names before it sends anything). Layer-neutral: no zod, so
 * the CLI does not load the schema library to check a name.
 */

/** Longest key and longest prefix, in characters. */
export const KEY_MAX_LENGTH = 128;

/** A secret key: uppercase letters, digits and underscores (length checked apart). */
export const KEY_PATTERN = /^[A-Z0-9_]+$/;
export const KEY_FORMAT_MESSAGE =
  'Invalid key format. Use uppercase letters, numbers, and underscores only (e.g., STRIPE_API_KEY)';

/** A key prefix for lists and exports: the key alphabet, possibly empty. */
export const PREFIX_PATTERN = /^[A-Z0-9_]*$/;
export const PREFIX_FORMAT_MESSAGE = 'prefix may contain only uppercase letters, numbers and underscores';

export const isSecretKey = (k: string) => k.length <= KEY_MAX_LENGTH && KEY_PATTERN.test(k);
export const isKeyPrefix = (p: string) => p.length <= KEY_MAX_LENGTH && PREFIX_PATTERN.test(p);
