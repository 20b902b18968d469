/**
 * Environment names (also the CLI's): a short lowercase slug, as migrations/007 checks it.
 * `default` is the InsForge API (/api/secrets...): it always exists and cannot be deleted.
 */
export const DEFAULT_ENVIRONMENT = 'default';
export const ENVIRONMENT_NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const ENVIRONMENT_NAME_RULE =
  'a lowercase slug of 1-32 letters, digits and hyphens, starting with a letter or digit (e.g. "production")';
/** A credential's environment list: names, or this for every environment. */
export const ALL_ENVIRONMENTS = '*';

export const isEnvironmentName = (s: string): boolean => ENVIRONMENT_NAME_RE.test(s);
