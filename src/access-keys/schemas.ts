import { z } from 'zod';
import { isoDateTime } from '../dates.js';
import { ALL_ENVIRONMENTS, ENVIRONMENT_NAME_RULE, isEnvironmentName } from '../environment-names.js';
import { SCOPES } from '../identity/actor.js';
import { cursorSchema, limitSchema } from '../pagination.js';
import { shownOnce, storable, strictBody } from '../zod-fields.js';

/** Request and response schemas of /api/access-keys (they also generate the OpenAPI document). */

export const KEY_PATTERN_RE = /^([A-Z0-9_]{1,128}|[A-Z0-9_]{0,127}\*)$/;

/** A grant's scopes and key patterns: an access key's, and a workload-identity trust's. */
export const grantScopes = z
  .array(z.enum(SCOPES, { error: `each scope must be one of: ${SCOPES.join(', ')}` }), {
    error: `scopes is required: an array of ${SCOPES.join(', ')}`,
  })
  .min(1, { error: 'scopes must name at least one scope' })
  .max(SCOPES.length * 2);
export const grantKeys = z
  .array(
    z.string().regex(KEY_PATTERN_RE, {
      error:
        'each entry of keys must be a secret key (STRIPE_API_KEY) or a prefix pattern ending in * (STRIPE_*)',
    }),
    { error: 'keys must be an array of key names or PREFIX_* patterns' },
  )
  .min(1, { error: 'keys must not be empty: omit it for access to every key' })
  .max(100, { error: 'keys may list at most 100 patterns' });

/** A grant's environments: names, or ["*"] for every environment (omitted: default only). */
export const grantEnvironments = z
  .array(
    z.string().refine((e) => e === ALL_ENVIRONMENTS || isEnvironmentName(e), {
      error: `each entry of environments must be an environment name (${ENVIRONMENT_NAME_RULE}) or "*"`,
    }),
    { error: 'environments must be an array of environment names, or ["*"]' },
  )
  .min(1, { error: 'environments must not be empty: omit it for the default environment only' })
  .max(100, { error: 'environments may list at most 100 names' })
  .meta({
    description:
      'The environments the grant covers: names, or ["*"] for every environment. Omitted: ["default"] (the /api/secrets API).',
  });

export const createAccessKeyBody = strictBody({
  name: storable(
    z
      .string({ error: 'name is required: a label for the key (e.g. "ci-deploy")' })
      .min(1, { error: 'name must not be empty' })
      .max(128, { error: 'name must be at most 128 characters' }),
    'name',
  ),
  scopes: grantScopes,
  keys: grantKeys
    .optional()
    .meta({ description: 'Restrict the key to these secret keys or PREFIX_* patterns; omit for all' }),
  environments: grantEnvironments.optional(),
  expiresAt: isoDateTime('expiresAt').nullable().optional(),
}).meta({ id: 'CreateAccessKeyRequest' });

export const accessKeyView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    tokenPrefix: z.string().meta({ description: 'The first characters of the token, for recognising it' }),
    scopes: z.array(z.string()),
    keys: z.array(z.string()).nullable(),
    environments: z.array(z.string()).meta({ description: 'Environment names, or ["*"] for every one' }),
    createdBy: z.string(),
    createdAt: z.iso.datetime(),
    expiresAt: z.iso.datetime().nullable(),
    revokedAt: z.iso.datetime().nullable(),
    lastUsedAt: z.iso.datetime().nullable(),
    status: z.enum(['active', 'revoked', 'expired']),
  })
  .meta({ id: 'AccessKey' });

export const createdAccessKey = accessKeyView
  .extend({ token: shownOnce('The secret token') })
  .meta({ id: 'CreatedAccessKey' });

export const accessKeyParams = z.object({ id: z.uuid({ error: 'id must be an access key id (a UUID)' }) });

export const accessKeyListQuery = z.object({
  limit: limitSchema,
  cursor: cursorSchema,
});
