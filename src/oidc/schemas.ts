import { z } from 'zod';
import { grantEnvironments, grantKeys, grantScopes } from '../access-keys/schemas.js';
import { strictBody } from '../zod-fields.js';
import { CLAIM_KEY_ERROR, CLAIM_KEY_RE } from './claim-path.js';

/** Request and response schemas of /api/auth/trusts and /api/auth/token. */

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const DEFAULT_TTL_SECONDS = 15 * 60;
export const MAX_TTL_SECONDS = 3600;

/** Trust names appear in audit actors as oidc:<trust>:<sub>, so they hold no ':'. */
export const TRUST_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const pattern = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, { error: `${what} must not be empty` })
    .max(512, { error: `${what} must be at most 512 characters` })
    .refine((s) => !s.includes('\u0000') && s.isWellFormed(), {
      error: `${what} must be text without NUL characters`,
    });

export const trustName = z
  .string({ error: 'name is required: a label for the trust (e.g. "github-deploy")' })
  .regex(TRUST_NAME_RE, {
    error: 'name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
  });

export const trustBody = strictBody({
  name: trustName,
  issuer: z
    .string({
      error: 'issuer is required: the OIDC issuer URL (e.g. https://token.actions.githubusercontent.com)',
    })
    .max(512, { error: 'issuer must be at most 512 characters' })
    .meta({ description: 'The issuer URL, exactly as the tokens carry it in iss (https)' }),
  audiences: z
    .array(pattern('each audience'), { error: 'audiences is required: the aud values to accept' })
    .min(1, { error: 'audiences must list at least one audience' })
    .max(10, { error: 'audiences may list at most 10 values' })
    .meta({ description: 'A token must carry one of these in aud (exact match)' }),
  subject: pattern('subject').meta({
    description: 'The sub to accept: exact, or a pattern where * matches any run of characters',
  }),
  claims: z
    .record(z.string().regex(CLAIM_KEY_RE), pattern('each claim value'), {
      // zod's own message for a bad record key is "Invalid key in record": name the key.
      error: (iss) =>
        iss.code === 'invalid_key'
          ? `claim ${JSON.stringify(String(iss.input).slice(0, 80))}: ${CLAIM_KEY_ERROR}`
          : undefined,
    })
    .optional()
    .refine((c) => c === undefined || Object.keys(c).length <= 20, {
      error: 'claims may bind at most 20 claims',
    })
    .meta({
      description:
        'More bindings: claim -> exact value or * pattern; each must match a string (or number, boolean) claim. The claim is a top-level name (e.g. repository_id, ref, environment) or, for a nested claim, a JSON Pointer (RFC 6901) starting with "/" (e.g. /kubernetes.io/namespace)',
    }),
  scopes: grantScopes,
  keys: grantKeys
    .optional()
    .meta({ description: 'The secret keys or PREFIX_* patterns granted; omit for all' }),
  environments: grantEnvironments.optional(),
  ttlSeconds: z
    .number({ error: `ttlSeconds must be a number of seconds from 60 to ${MAX_TTL_SECONDS}` })
    .int({ error: 'ttlSeconds must be a whole number' })
    .min(60, { error: 'ttlSeconds must be at least 60' })
    .max(MAX_TTL_SECONDS, { error: `ttlSeconds must be at most ${MAX_TTL_SECONDS} (1 hour)` })
    .optional()
    .meta({ description: `Lifetime of the issued credential (default ${DEFAULT_TTL_SECONDS})` }),
}).meta({ id: 'TrustPolicyRequest' });

export type TrustInput = z.output<typeof trustBody>;

export const trustView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    issuer: z.string(),
    audiences: z.array(z.string()),
    subject: z.string(),
    claims: z.record(z.string(), z.string()),
    scopes: z.array(z.string()),
    keys: z.array(z.string()).nullable(),
    environments: z.array(z.string()).meta({ description: 'Environment names, or ["*"] for every one' }),
    ttlSeconds: z.number().int(),
    createdBy: z.string(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'TrustPolicy' });

export const trustParams = z.object({ name: trustName });

/** RFC 8693 §2.1; form-encoded or JSON. `trust` (ours) names the policy when several match. */
export const tokenExchangeBody = z
  .object(
    {
      grant_type: z.literal(TOKEN_EXCHANGE_GRANT, {
        error: `grant_type must be ${TOKEN_EXCHANGE_GRANT}`,
      }),
      subject_token: z
        .string({ error: 'subject_token is required: the ID token your platform issued' })
        .min(1, { error: 'subject_token must not be empty' })
        .max(16_384, { error: 'subject_token is too long' }),
      subject_token_type: z.literal([JWT_TOKEN_TYPE, 'urn:ietf:params:oauth:token-type:id_token'], {
        error: `subject_token_type must be ${JWT_TOKEN_TYPE}`,
      }),
      scope: z
        .string({ error: 'scope must be a space-separated list of scopes' })
        .max(512)
        .optional()
        .meta({ description: "Narrower scopes than the trust's grant (space-separated)" }),
      trust: trustName
        .optional()
        .meta({ description: 'The trust policy to use (needed only when several match)' }),
      requested_token_type: z.string().max(256).optional(),
      audience: z.string().max(512).optional(),
      resource: z.string().max(512).optional(),
    },
    { error: 'Request body must be a form-encoded or JSON object' },
  )
  .meta({ id: 'TokenExchangeRequest' });

export const tokenExchangeResponse = z
  .object({
    access_token: z
      .string()
      .meta({ description: 'The workload credential (iw_...): use it as a Bearer token' }),
    issued_token_type: z.literal(ACCESS_TOKEN_TYPE),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    scope: z.string(),
  })
  .meta({ id: 'TokenExchangeResponse' });
