import { z } from 'zod';

/** The answer of a key rotation run (POST /api/keys/rewrap); the service returns its output type. */
export const rewrapResult = z.object({
  activeKid: z.string(),
  rewrapped: z.number().int().meta({ description: 'Rows moved to the active kid by this run' }),
  failed: z
    .number()
    .int()
    .meta({ description: 'Rows whose data key failed its integrity check (left as they are)' }),
  remaining: z.number().int().meta({ description: 'Rows still under another kid after this run' }),
  batches: z.number().int(),
  durationMs: z.number().int(),
});
