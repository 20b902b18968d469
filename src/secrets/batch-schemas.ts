import { z } from 'zod';
import { generateSpec } from './generate.js';
import { bool, entryMetadata, keySchema, object, value } from './schemas.js';

/** POST /api/secrets/batch: many creates and updates in one transaction (secrets import). */
export const MAX_BATCH = 1000;

/** A list of entries may name each key once: the repeats are named (batch import, promote). */
export function eachKeyOnce(ctx: z.core.ParsePayload<{ key: string }[]>): void {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const e of ctx.value) (seen.has(e.key) ? dup : seen).add(e.key);
  if (dup.size)
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `each key may appear once; repeated: ${[...dup].join(', ')}`,
    });
}

const batchEntry = object({
  key: keySchema,
  value: value(false).optional(),
  generate: generateSpec.optional(),
  ...entryMetadata,
  ifMatch: z
    .string({ error: 'ifMatch must be a string (an ETag)' })
    .max(1024, { error: 'ifMatch must be at most 1024 characters' })
    .optional()
    .meta({ description: 'Apply this entry only if the secret is in this state (its ETag); else 412' }),
  ifNoneMatch: z.literal('*', { error: 'ifNoneMatch must be "*"' }).optional().meta({
    description: 'Apply this entry only if no active secret has the key (a deleted one is revived); else 412',
  }),
})
  .check((ctx) => {
    const e = ctx.value;
    if (e.ifMatch !== undefined && e.ifNoneMatch !== undefined)
      ctx.issues.push({
        code: 'custom',
        input: e,
        message: `${e.key}: give ifMatch or ifNoneMatch, not both`,
      });
    if ((e.value === undefined) === (e.generate === undefined))
      ctx.issues.push({
        code: 'custom',
        input: e,
        message: `${e.key}: give exactly one of value or generate`,
      });
  })
  .meta({ id: 'BatchSecretEntry' });

export const batchBody = object({
  secrets: z
    .array(batchEntry, { error: 'secrets must be an array of {key, value | generate, ...}' })
    .min(1, { error: 'secrets must hold at least one entry' })
    .max(MAX_BATCH, { error: `secrets holds at most ${MAX_BATCH} entries: split the import` })
    .check(eachKeyOnce),
  dryRun: bool('dryRun')
    .optional()
    .meta({ description: 'Report what would change without changing anything', default: false }),
}).meta({ id: 'BatchRequest' });

export type BatchEntry = z.output<typeof batchEntry>;

export const batchResponse = z
  .object({
    dryRun: z.boolean(),
    results: z.array(
      z.object({
        key: z.string(),
        status: z.enum(['created', 'updated', 'unchanged']),
      }),
    ),
  })
  .meta({ id: 'BatchResponse' });
