import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { z } from 'zod';
import { jwtPlugin } from './auth/jwt.js';
import { loginRoutes } from './auth/login.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Database } from './db/database.js';
import { migrationsApplied } from './db/migrate.js';
import { installErrorHandling } from './http/error-handler.js';
import { errors } from './http/errors.js';
import { metricsPlugin } from './http/metrics.js';
import { createBulkRepository } from './secrets/bulk-repository.js';
import { bulkRoutes } from './secrets/bulk-routes.js';
import { createBulkService } from './secrets/bulk-service.js';
import { createSecretsRepository } from './secrets/repository.js';
import { secretRoutes } from './secrets/routes.js';
import { createSecretService } from './secrets/service.js';

export interface AppDeps {
  config: Config;
  db: Database;
  keyring: Keyring;
  /** The HS256 secret (from config or generated into DATA_DIR by the bootstrap). */
  jwtSecret: string;
  logger: Logger;
  /** How many migrations /ready expects to see applied. */
  migrationCount: number;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Builds the whole HTTP application from its dependencies; reads no environment, opens nothing. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, db, keyring, logger } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // JSON escaping can make a body up to six times the size of the value it carries.
    bodyLimit: config.maxValueBytes * 6 + 64 * 1024,
    trustProxy: config.trustProxy,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
  });
  app.setValidatorCompiler(validatorCompiler);
  // Responses are built by our own code from typed objects; plain JSON.stringify keeps the
  // hot path free of a second validation pass. The zod response schemas document them.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
  });
  installErrorHandling(app);
  // Not encapsulated, so its hooks see every route; /metrics itself needs no token (scrapers).
  await app.register(fastifyPlugin(metricsPlugin), { db });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Secrets API',
        version: '1.0.0',
        description:
          'InsForge-compatible secrets management: API keys, tokens and credentials encrypted at rest (AES-256-GCM envelope encryption).',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => errors.rateLimited(Math.max(1, Math.ceil(ctx.ttl / 1000))),
  });
  await app.register(jwtPlugin, { config, jwtSecret: deps.jwtSecret });

  const repo = createSecretsRepository();
  const secrets = createSecretService({
    db,
    repo,
    keyring,
    log: logger,
    maxValueBytes: config.maxValueBytes,
  });
  const bulk = createBulkService({ db, repo: createBulkRepository(), keyring, log: logger });

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
        ok = await migrationsApplied(db, deps.migrationCount);
      } catch {
        ok = false;
      }
      if (!ok) throw errors.unavailable();
      return { status: 'ready' as const };
    },
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(loginRoutes, { config });

  // Everything under /api except login requires an admin token; the guard runs before the
  // body is parsed, so unauthenticated callers learn nothing about the schema.
  await app.register(async (secured) => {
    secured.addHook('onRoute', (route) => {
      route.schema = { ...route.schema, security: [{ bearerAuth: [] }] };
    });
    secured.addHook('onRequest', async (req) => secured.requireAdmin(req));
    await secured.register(secretRoutes, { secrets });
    await secured.register(bulkRoutes, { bulk });
  });

  return app;
}
