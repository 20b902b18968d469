import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponse } from '../http/schemas.js';

/**
 * GET /api/auth/whoami: who the credential is (secrets whoami, secrets login's check).
 * Any valid credential may ask; it reveals no secret material, so it is not audited.
 */
export async function whoamiRoutes(app: FastifyInstance) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/auth/whoami',
    {
      config: { access: {} },
      schema: {
        tags: ['Auth'],
        summary: 'The caller behind the credential',
        response: {
          200: z
            .object({
              kind: z.enum(['admin', 'access_key', 'workload']),
              name: z.string(),
              scopes: z.array(z.string()).nullable(),
              keys: z.array(z.string()).nullable(),
            })
            .meta({ id: 'WhoAmI' }),
          401: errorResponse,
          429: errorResponse,
        },
      },
    },
    async (req) => {
      const a = req.actor!;
      return a.kind === 'admin'
        ? { kind: 'admin' as const, name: a.sub, scopes: null, keys: null }
        : {
            kind: a.workload ? ('workload' as const) : ('access_key' as const),
            name: a.name,
            scopes: [...a.scopes],
            keys: a.patterns ? [...a.patterns] : null,
          };
    },
  );
}
