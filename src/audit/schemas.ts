import { z } from 'zod';

/**
 * The answer of GET /api/audit/verify; the sealer's verify returns its output type.
 * checked: the rows of the live, unarchived seals; firstBrokenId: the id of the first row
 * that does not match.
 */
export const chainVerification = z.object({
  intact: z.boolean(),
  checked: z.number().int(),
  seals: z.number().int().meta({ description: 'Seals checked' }),
  firstBrokenId: z.string().nullable(),
  firstBrokenSeal: z
    .string()
    .nullable()
    .meta({ description: 'The first seal that does not match or is missing' }),
  reason: z.string().nullable(),
  anchorSeal: z.string().meta({
    description: 'The last archived seal verification started from ("0": the start of the chain)',
  }),
});
