import { z } from 'zod';
import { ENVIRONMENT_NAME_RE, ENVIRONMENT_NAME_RULE } from '../environment-names.js';
import { cursorSchema, limitSchema } from '../pagination.js';
import { KEY_FORMAT_MESSAGE, KEY_MAX_LENGTH, KEY_PATTERN } from '../secret-names.js';
import { eachKeyOnce, MAX_BATCH } from '../secrets/batch-schemas.js';
import { keyPrefix } from '../secrets/schemas.js';
import { storable, strictBody } from '../zod-fields.js';

/** Request and response schemas of /api/environments (they also generate the OpenAPI document). */

export const environmentName = z
  .string({ error: `name is required: ${ENVIRONMENT_NAME_RULE}` })
  .regex(ENVIRONMENT_NAME_RE, { error: `an environment name must be ${ENVIRONMENT_NAME_RULE}` })
  .meta({ example: 'staging' });

export const envParams = z.object({ env: environmentName });

const description = storable(
  z.string().max(1000, { error: 'description must be at most 1000 characters' }),
  'description',
).nullable();

export const createEnvironmentBody = strictBody({
  name: environmentName,
  description: description.optional(),
}).meta({ id: 'CreateEnvironmentRequest' });

export const updateEnvironmentBody = strictBody({
  description: z.union([description, z.undefined()]).refine((d) => d !== undefined, {
    error: 'description is required (null clears it)',
  }),
}).meta({ id: 'UpdateEnvironmentRequest' });

export const environmentView = z
  .object({
    name: z.string(),
    description: z.string().nullable(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    secrets: z
      .object({ active: z.number().int(), inactive: z.number().int() })
      .optional()
      .meta({ description: 'How many secrets it holds (admins only)' }),
  })
  .meta({ id: 'Environment' });

export const environmentListQuery = z.object({ limit: limitSchema, cursor: cursorSchema });

export const compareParams = z.object({ env: environmentName, other: environmentName });

export const compareQuery = z.object({ prefix: keyPrefix });

export const compareResponse = z
  .object({
    a: z.string(),
    b: z.string(),
    keys: z.array(
      z.object({
        key: z.string(),
        status: z.enum(['only_in_a', 'only_in_b', 'equal', 'different', 'not_compared']),
        reason: z.enum(['write_only', 'unreadable']).optional(),
        etagA: z.string().optional(),
        etagB: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'EnvironmentComparison' });

export const promoteBody = strictBody({
  secrets: z
    .array(
      strictBody({
        key: z
          .string({ error: 'key is required' })
          .max(KEY_MAX_LENGTH, { error: `key must be at most ${KEY_MAX_LENGTH} characters` })
          .regex(KEY_PATTERN, { error: KEY_FORMAT_MESSAGE }),
        targetEtag: z
          .string({
            error: 'targetEtag is required: the target ETag from compare (etagB), or null for "absent"',
          })
          .max(1024, { error: 'targetEtag must be at most 1024 characters' })
          .nullable()
          .meta({
            description:
              "Compare-and-set on the target: the ETag seen there (compare's etagB), or null when it must hold no active secret of that key",
          }),
      }),
      { error: 'secrets must be an array of {key, targetEtag}' },
    )
    .min(1, { error: 'secrets must name at least one key' })
    .max(MAX_BATCH, { error: `secrets holds at most ${MAX_BATCH} entries` })
    .check(eachKeyOnce),
}).meta({ id: 'PromoteRequest' });

export const promoteResponse = z
  .object({
    from: z.string(),
    to: z.string(),
    results: z.array(z.object({ key: z.string(), status: z.enum(['created', 'updated', 'unchanged']) })),
  })
  .meta({ id: 'PromoteResponse' });
