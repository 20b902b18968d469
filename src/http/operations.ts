import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { migrationsApplied } from '../db/migrate.js';
import { errors } from '../errors.js';

/**
 * The operations routes a load balancer or orchestrator calls, without a token:
 * /health (the process answers) and /ready (database reachable, migrations applied).
 * /metrics is src/http/metrics.ts; /docs and /openapi.json are src/http/openapi.ts.
 */
export async function operationsRoutes(app: FastifyInstance, opts: { db: Database; migrationCount: number }) {
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
        response: { 200: z.object({ status: z.literal('ready') }) },
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
      return { status: 'ready' as const };
    },
  );
}
