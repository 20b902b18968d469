import { z } from 'zod';
import { isStorableText } from './storable-text.js';

/**
 * zod pieces for request bodies that are not about HTTP, so a feature's schemas (and the
 * types services take from them with z.infer) need nothing of src/http/.
 */

/**
 * A text field PostgreSQL can store as sent (src/storable-text.ts): NUL or an unpaired
 * surrogate is a 400 naming the field, never a database error.
 */
export const storable = (schema: z.ZodString, name: string) =>
  schema.refine(isStorableText, {
    error: `${name} must be text without NUL characters or unpaired surrogates`,
  });

/** A credential the service keeps only hashed or sealed: returned once, in the response that makes it. */
export const shownOnce = (what: string) =>
  z.string().meta({ description: `${what}: shown only in this response` });

/** A JSON object body that refuses unknown fields by name. */
export const strictBody = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? `Unknown field(s): ${iss.keys.join(', ')}`
        : 'Request body must be a JSON object',
  });
