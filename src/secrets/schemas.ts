import { z } from 'zod';
import { isoDateTime } from '../dates.js';
import { cursorSchema, limitSchema } from '../pagination.js';
import {
  KEY_FORMAT_MESSAGE,
  KEY_MAX_LENGTH,
  KEY_PATTERN,
  PREFIX_FORMAT_MESSAGE,
  PREFIX_PATTERN,
} from '../secret-names.js';
import { strictBody as object, storable } from '../zod-fields.js';
import { generateSpec } from './generate.js';

/**
 * The zod schemas that validate requests and, through @fastify/swagger, generate the
 * OpenAPI document. Every message names the field and says what is expected, because the
 * error body passes them to the caller as they are.
 */

/** The optional key prefix that narrows a listing, an export or a comparison. */
export const keyPrefix = z
  .string()
  .max(KEY_MAX_LENGTH, { error: `prefix must be at most ${KEY_MAX_LENGTH} characters` })
  .regex(PREFIX_PATTERN, { error: PREFIX_FORMAT_MESSAGE })
  .optional();

const keyField = (missing: string) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? missing : 'key must be a string') })
    .min(1, { error: KEY_FORMAT_MESSAGE })
    .max(KEY_MAX_LENGTH, { error: `Invalid key format: a key is at most ${KEY_MAX_LENGTH} characters` })
    .regex(KEY_PATTERN, { error: KEY_FORMAT_MESSAGE })
    .meta({
      description: 'Secret key identifier: uppercase letters, digits, underscores',
      example: 'STRIPE_API_KEY',
    });

export const keySchema = keyField('key is required');

// Re-exported for this feature's schema files.
export { object };

export const bool = (name: string) => z.boolean({ error: `${name} must be a boolean (true or false)` });

/** The write-only flag, as create, update and batch entries take it. */
export const isWriteOnly = () =>
  bool('isWriteOnly').meta({
    description:
      'Write-only: the value is never returned by GET /api/secrets/{key} (403 for everyone, admins included); export and render hand it only to credentials with the secrets:inject scope. Once true it can never be set back to false. Setting it on an existing secret is admin-only.',
    default: false,
  });

// Values are opaque strings stored byte for byte. An unpaired surrogate cannot be encoded
// as UTF-8 without being replaced, so it is refused instead of silently altered.
export const value = (required: boolean) =>
  z
    .string({
      error: (iss) =>
        iss.input === undefined && required ? 'Both key and value are required' : 'value must be a string',
    })
    .min(1, { error: 'value must not be empty' })
    .refine((v) => v.isWellFormed(), {
      error: 'value must be valid Unicode text (it contains an unpaired surrogate)',
    })
    .meta({ description: 'Secret value (encrypted before storage)', example: 'sk_live_...' });

export const expiresAt = isoDateTime('expiresAt')
  .nullable()
  .meta({ description: 'Expiry (ISO 8601); null for none. Reads after it answer 404.' });

export const description = storable(
  z
    .string({ error: 'description must be a string or null' })
    .max(1024, { error: 'description must be at most 1024 characters' }),
  'description',
).nullable();

/**
 * The metadata one entry of a batch import may set (src/secrets/batch-schemas.ts): kept
 * here beside createBody and updateBody, so that a new field is added in this file only.
 */
export const entryMetadata = {
  description: description.optional(),
  expiresAt: expiresAt.optional(),
  isReserved: bool('isReserved').optional(),
  isWriteOnly: isWriteOnly().optional(),
};

export const createBody = object({
  key: keyField('Both key and value are required'),
  value: value(true).optional(),
  generate: generateSpec.optional(),
  isReserved: bool('isReserved')
    .optional()
    .meta({ description: 'Protect the secret from deletion', default: false }),
  isWriteOnly: isWriteOnly().optional(),
  expiresAt: expiresAt.optional(),
  description: description.optional(),
})
  .check((ctx) => {
    const b = ctx.value;
    if (b.value === undefined && b.generate === undefined)
      ctx.issues.push({
        code: 'custom',
        input: b,
        message: 'Both key and value are required',
      });
    if (b.value !== undefined && b.generate !== undefined)
      ctx.issues.push({ code: 'custom', input: b, message: 'Give either value or generate, not both' });
  })
  .meta({ id: 'CreateSecretRequest' });

export const UPDATE_FIELDS = [
  'value',
  'isActive',
  'isReserved',
  'isWriteOnly',
  'expiresAt',
  'description',
] as const;

export const updateBody = object({
  value: value(false).optional(),
  isActive: bool('isActive').optional(),
  isReserved: bool('isReserved').optional(),
  isWriteOnly: isWriteOnly().optional(),
  expiresAt: expiresAt.optional(),
  description: description.optional(),
})
  .refine((b) => UPDATE_FIELDS.some((f) => b[f] !== undefined), {
    error: `Request body must include at least one of: ${UPDATE_FIELDS.join(', ')}`,
  })
  .meta({ id: 'UpdateSecretRequest' });

export const keyParams = z.object({ key: keySchema });

export const listQuery = z.object({
  limit: limitSchema,
  cursor: cursorSchema,
  prefix: z.string().max(KEY_MAX_LENGTH).regex(PREFIX_PATTERN, { error: PREFIX_FORMAT_MESSAGE }).optional(),
  active: z
    .enum(['true', 'false'], { error: 'active must be true or false' })
    .transform((v) => v === 'true')
    .optional(),
});

export const secretMetadata = z
  .object({
    id: z.uuid(),
    key: z.string(),
    description: z.string().nullable(),
    isActive: z.boolean(),
    isReserved: z.boolean(),
    isWriteOnly: z
      .boolean()
      .meta({ description: 'The value is never returned; only secrets:inject credentials receive it' }),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime().nullable(),
    lastUsedAt: z.iso.datetime().nullable(),
    lastUsedBy: z.string().nullable(),
    version: z.number().int().meta({ description: 'Current version number' }),
  })
  .meta({ id: 'SecretMetadata' });

export const successResponse = z.object({ success: z.literal(true), message: z.string() });

// Versions are int4 in the database: a number past 2^31-1 is refused here, not by the driver.
const MAX_VERSION = 2_147_483_647;
const VERSION_MESSAGE = `version must be a whole number from 1 to ${MAX_VERSION}`;
const versionNumber = z
  .number({ error: VERSION_MESSAGE })
  .int({ error: VERSION_MESSAGE })
  .min(1, { error: VERSION_MESSAGE })
  .max(MAX_VERSION, { error: VERSION_MESSAGE });

export const revealQuery = z.object({
  // Digits only: "1.5", "1e3", "0x10", " 7" and "-1" are refused instead of coerced.
  version: z
    .string()
    .regex(/^[1-9][0-9]{0,9}$/, { error: VERSION_MESSAGE })
    .transform(Number)
    .pipe(versionNumber)
    .optional()
    .meta({ description: 'Read this older version instead of the current one' }),
});

export const deleteQuery = z.object({
  purge: z
    .enum(['true', 'false'], { error: 'purge must be true or false' })
    .transform((v) => v === 'true')
    .optional()
    .meta({
      description:
        'true: erase an inactive, non-reserved secret and all its versions irreversibly (soft-delete it first)',
    }),
});

export const ifMatchHeaders = z.looseObject({
  'if-match': z.string().max(1024).optional().meta({
    description:
      'Compare-and-set: the ETag of the state you read; 412 PRECONDITION_FAILED (with the current ETag) when the secret changed since',
  }),
});

/** The route schema of a change to one secret: its key in the path, If-Match in the headers. */
export const keyedChange = { params: keyParams, headers: ifMatchHeaders };

export const ifNoneMatchHeaders = z.looseObject({
  'if-none-match': z.string().max(1024).optional().meta({
    description: 'The ETag of the value you hold: 304 Not Modified (no body) while it is current',
  }),
});

export const rollbackBody = object({
  version: versionNumber.meta({ description: 'The version whose value becomes the new current version' }),
}).meta({ id: 'RollbackRequest' });

export const versionMetadata = z
  .object({
    version: z.number().int(),
    createdAt: z.iso.datetime(),
    createdBy: z.string().nullable(),
    kid: z.string().meta({ description: 'Key id of the key-encryption key wrapping this version' }),
    current: z.boolean(),
  })
  .meta({ id: 'SecretVersion' });

export const versionsResponse = z.object({
  key: z.string(),
  currentVersion: z.number().int(),
  versions: z.array(versionMetadata).meta({ description: 'Kept versions, newest first (never values)' }),
});
