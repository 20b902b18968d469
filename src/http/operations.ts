import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { migrationsApplied } from '../db/migrate.js';
import type { ReadRouting } from '../db/read-replicas.js';
import { errors } from '../errors.js';

/**
 * The operations routes a load balancer or orchestrator calls, without a token:
 * /health (the process answers) and /ready (database reachable, migrations applied; with
 * read replicas, how each one stands).
 * /metrics is src/http/metrics.ts; /docs and /openapi.json are src/http/openapi.ts.
 */
export async function operationsRoutes(
  app: FastifyInstance,
  opts: { db: Database; migrationCount: number; reads?: ReadRouting | undefined },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/health',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Liveness',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
  r.get(
    '/ready',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Readiness: database reachable and migrated',
        description:
          'With read replicas (DATABASE_READ_URL), `replicas` says how each one stands; a replica that is down or behind does not make the service unready: the primary serves its reads.',
        response: {
          200: z.object({
            status: z.literal('ready'),
            replicas: z
              .array(
                z.object({
                  name: z.string().describe('host:port'),
                  status: z.enum(['serving', 'lagging', 'paused', 'not_in_recovery', 'down', 'unknown']),
                  lagMs: z.number().nullable().describe('how far behind the primary at the last check'),
                  lagBytes: z.number().nullable(),
                  reads: z.number().describe('reads it served since start'),
                }),
              )
              .optional(),
          }),
        },
      },
    },
    async () => {
      let ok = false;
      try {
        ok = await migrationsApplied(opts.db, opts.migrationCount);
      } catch {
        ok = false;
      }
      if (!ok) throw errors.unavailable();
      return opts.reads?.enabled
        ? { status: 'ready' as const, replicas: opts.reads.state().replicas }
        : { status: 'ready' as const };
    },
  );
}
