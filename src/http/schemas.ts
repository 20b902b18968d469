import { z } from 'zod';

/**
 * Schema pieces shared by every feature's routes (they also generate the OpenAPI document):
 * the error body and the unlogged-query mark (the strict body and storable text fields,
 * which services may use too, are src/zod-fields.ts). The secret key and
 * prefix rules are src/secret-names.ts (the CLI uses them too). Feature
 * schemas stay with their feature (src/secrets/schemas.ts, src/access-keys/schemas.ts).
 */

/** The InsForge error body every 4xx/5xx carries (rendered by src/http/error-handler.ts). */
export const errorResponse = z
  .object({
    error: z.string().meta({ description: 'Error code for programs', example: 'INVALID_INPUT' }),
    message: z.string().meta({ description: 'Human-readable message' }),
    statusCode: z.number().int(),
    nextActions: z.string().optional().meta({ description: 'How to resolve the error' }),
  })
  .meta({ id: 'ErrorResponse' });

/**
 * Query parameters never to be logged by value. Every parameter a route's querystring
 * schema declares is logged (src/http/access-log.ts collects them at registration); one
 * that could carry a credential is marked here with `unlogged()` and logged as [redacted],
 * like any parameter the route does not declare. A zod registry of its own, so the mark
 * stays out of the OpenAPI document.
 */
export const unloggedQuery = z.registry<{ reason: string }>();
export const unlogged = <T extends z.ZodType>(schema: T, reason: string): T => {
  unloggedQuery.add(schema, { reason });
  return schema;
};

/** The error responses a route documents, one ErrorResponse per status: `errorResponses(400, 401, 403)`. */
export const errorResponses = <S extends number>(...statuses: S[]) =>
  Object.fromEntries(statuses.map((s) => [s, errorResponse])) as Record<`${S}`, typeof errorResponse>;
