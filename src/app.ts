import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { validatorCompiler } from 'fastify-type-provider-zod';
import helmet from 'helmet';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AccessKeysRepository } from './access-keys/repository.js';
import { accessKeyRoutes } from './access-keys/routes.js';
import { AccessKeyService } from './access-keys/service.js';
import { AuditJobs } from './audit/jobs.js';
import { AuditMaintenance } from './audit/maintenance.js';
import { withOutcome } from './audit/outcome.js';
import { AuditRepository } from './audit/repository.js';
import { auditRoutes } from './audit/routes.js';
import { AuditSealer } from './audit/sealer.js';
import { SuppressedRefusals } from './audit/suppressed.js';
import { AuditTrail } from './audit/trail.js';
import { AuditWriter } from './audit/writer.js';
import { documentSecurity, installGuard, type RouteAccess, routeAccess } from './auth/guard.js';
import { jwtAlgorithm, jwtPlugin } from './auth/jwt.js';
import { loginRoutes } from './auth/login.js';
import { whoamiRoutes } from './auth/whoami-routes.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Database } from './db/database.js';
import type { ReadRouting } from './db/read-replicas.js';
import { CompareService } from './environments/compare.js';
import { PromoteService } from './environments/promote.js';
import { EnvironmentsRepository } from './environments/repository.js';
import { environmentRoutes } from './environments/routes.js';
import { environmentName, envParams } from './environments/schemas.js';
import { EnvironmentService } from './environments/service.js';
import { errors } from './errors.js';
import { Dispatcher } from './events/dispatcher.js';
import { EventsRepository } from './events/repository.js';
import { eventStreamRoutes, webhookRoutes } from './events/routes.js';
import { EventStreams } from './events/stream.js';
import { WebhookService } from './events/webhooks.js';
import { collectLoggedQuery, OneLineAccessLog } from './http/access-log.js';
import { consoleRoutes } from './http/console.js';
import { installErrorHandling } from './http/error-handler.js';
import { metricsPlugin } from './http/metrics.js';
import { openapiPlugin } from './http/openapi.js';
import { operationsRoutes } from './http/operations.js';
import { Limits } from './http/rate-limits.js';
import { callerOf } from './identity/caller.js';
import { KekRepository } from './kek/repository.js';
import { kekRoutes } from './kek/routes.js';
import { KekService } from './kek/service.js';
import { IssuerKeys } from './oidc/issuer-keys.js';
import { MemoryReplayGuard, RedisReplayGuard } from './oidc/replay.js';
import { OidcRepository } from './oidc/repository.js';
import { tokenExchangeRoutes, trustRoutes } from './oidc/routes.js';
import { OidcService } from './oidc/service.js';
import { batchRoutes } from './secrets/batch-routes.js';
import { BatchService } from './secrets/batch-service.js';
import { BulkGate } from './secrets/bulk-gate.js';
import { BulkRepository } from './secrets/bulk-repository.js';
import { bulkRoutes } from './secrets/bulk-routes.js';
import { BulkService } from './secrets/bulk-service.js';
import { Changes } from './secrets/changes.js';
import { DEFAULT_BASE, ENVIRONMENT_BASE } from './secrets/mount.js';
import { readMarks } from './secrets/read-marks.js';
import { SecretsRepository } from './secrets/repository.js';
import { secretRoutes } from './secrets/routes.js';
import { SecretService } from './secrets/service.js';
import { versionRoutes } from './secrets/version-routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The group-committed audit writer (its batch statistics feed the benchmark report). */
    auditWriter: AuditWriter;
    /**
     * Refusals rate limits answered without an audit row each, written as summary rows every
     * RATE_LIMIT_SUMMARY_INTERVAL_MS and on close (src/audit/suppressed.ts); `flush()` writes them now.
     */
    suppressedRefusals: SuppressedRefusals;
    /** Per-caller and pool-share bounds of the bulk routes (src/secrets/bulk-gate.ts). */
    bulkGate: BulkGate;
    /** Webhook delivery (src/events/dispatcher.ts): tests and benchmarks drive and read it. */
    webhookDispatcher: Dispatcher;
    /** GET /api/events streams (src/events/stream.ts): tests read its shared poller's counts. */
    eventStreams: EventStreams;
  }
}

export interface AppDeps {
  config: Config;
  db: Database;
  keyring: Keyring;
  /** The HS256 secret (from config or generated into DATA_DIR by the bootstrap). */
  jwtSecret: string;
  logger: Logger;
  /** How many migrations /ready expects to see applied. */
  migrationCount: number;
  /** Rate-limit counters shared between instances (REDIS_URL); in process without it. */
  redis?: Redis | undefined;
  /** Read replicas (DATABASE_READ_URL); without it every read goes to `db`. */
  reads?: ReadRouting | undefined;
  /** Log successful /health and /ready at debug (a developer's terminal); default: info. */
  quietProbes?: boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The headers a helmet middleware sets, as a flat [name, value, ...] list: helmet's output
 * depends only on its options (no nonces are configured), so it is captured once by running
 * it against a recording response. Throws if helmet ever needs the request or fails.
 */
function staticHeaders(
  middleware: (req: never, res: never, next: (err?: unknown) => void) => void,
): readonly string[] {
  const out: string[] = [];
  let failed: unknown;
  const res = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      out.push(name, String(value));
    },
    removeHeader: () => {},
  };
  middleware({} as never, res as never, (err) => {
    failed = err;
  });
  if (failed) throw failed;
  if (out.length === 0) throw new Error('helmet set no headers');
  return out;
}

/**
 * An onRoute hook marking every route of a scope as addressing an environment (the guard
 * checks the caller covers it; src/auth/guard.ts). Routes that declare no access stay
 * admin-only: the default is kept, the environment added to it.
 */
const addressing =
  (environment: 'default' | 'param') =>
  (route: { config?: { access?: RouteAccess }; schema?: FastifySchema }): void => {
    route.config = { ...route.config, access: { ...routeAccess(route.config), environment } };
    if (environment === 'param' && route.schema) {
      // The path's :env, validated and documented like the route's own parameters.
      const params = route.schema.params;
      route.schema = {
        ...route.schema,
        tags: ['Environment secrets'],
        params: params instanceof z.ZodObject ? params.extend({ env: environmentName }) : envParams,
      };
    }
  };

/**
 * Builds the whole HTTP application from its dependencies; reads no environment, opens
 * nothing. The table of contents: the server and its per-request hooks, the plugins every
 * route shares, the services, the routes, and the audit trail's background jobs.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = createServer(deps);
  await registerSharedPlugins(app, deps);
  const services = createServices(app, deps);
  await registerRoutes(app, deps, services);
  scheduleAuditJobs(app, deps, services);
  scheduleEventJobs(app, services);
  return app;
}

/** The fastify server: limits, request ids, the access log, JSON only, security headers. */
function createServer(deps: AppDeps): FastifyInstance {
  const { config, logger } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // JSON escaping can make a body up to six times the size of the value it carries.
    bodyLimit: config.maxValueBytes * 6 + 64 * 1024,
    // A hop count as Fastify implements it for numbers (its types omit them): trust the
    // nearest `n` addresses, the socket's peer first.
    trustProxy:
      typeof config.trustProxy === 'number'
        ? (
            (hops: number) => (_address: string, hop: number) =>
              hop < hops
          )(config.trustProxy)
        : config.trustProxy,
    requestIdHeader: false,
    logController: new OneLineAccessLog(logger, { quietProbes: deps.quietProbes ?? false }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // Every connection is bounded in time, so trickling bytes cannot hold sockets open: the
    // whole request (REQUEST_TIMEOUT_MS) and its headers (HEADERS_TIMEOUT_MS) must arrive in
    // time, else 408 and the connection is closed; an idle keep-alive connection closes
    // after KEEP_ALIVE_TIMEOUT_MS. Node checks the first two every connectionsCheckingInterval,
    // so that is kept well below them (Node's default, 30 s, would stretch a 1 s limit to 31 s).
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: {
      headersTimeout: Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
      connectionsCheckingInterval: Math.min(
        1000,
        Math.max(50, Math.floor(Math.min(config.headersTimeoutMs, config.requestTimeoutMs) / 4)),
      ),
    },
  });
  // The API speaks JSON only. Fastify's built-in text/plain parser would hand a string to
  // the body schema and answer "must be a JSON object"; without it the caller gets a 415
  // that says which Content-Type to send.
  app.removeContentTypeParser('text/plain');
  // Before any route: each route's loggable query parameters come from its schema.
  collectLoggedQuery(app);
  app.setValidatorCompiler(validatorCompiler);
  // Responses are built by our own code from typed objects; plain JSON.stringify keeps the
  // hot path free of a second validation pass. The zod response schemas document them.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // Synchronous hooks here and below: an async hook costs a promise and a microtask turn
  // per request, on every route (the read path's profile showed hook machinery as a few %).
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
    done(null, payload);
  });
  installErrorHandling(app);
  // Security headers on every response (404s and errors included). One CSP for the JSON API
  // and the Swagger UI at /docs: its page loads only its own scripts and stylesheets, so
  // scripts are 'self' with no 'unsafe-inline'; styles allow inline (Swagger UI sets them).
  // A route may set its own, stricter CSP with reply.header(), which replaces this one.
  // helmet computes the headers (its defaults and this policy); they do not depend on the
  // request, so they are computed once and each response gets the same list, not rebuilt
  // by helmet's middlewares on every request (the read path is most requests).
  const securityHeaders = staticHeaders(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          scriptSrcAttr: ["'none'"],
          styleSrc: ["'self'", "'unsafe-inline'"],
          imgSrc: ["'self'", 'data:'],
          fontSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
        },
      },
      frameguard: { action: 'deny' },
    }),
  );
  app.addHook('onRequest', (_req, reply, done) => {
    const res = reply.raw;
    for (let i = 0; i < securityHeaders.length; i += 2)
      res.setHeader(securityHeaders[i]!, securityHeaders[i + 1]!);
    done();
  });
  if (config.trustProxy !== false) {
    // Behind trusted proxies req.ip comes from X-Forwarded-For, which may hold any text: it
    // keys the per-address limits and is written to the audit trail, so it must be an address.
    app.addHook('onRequest', async (req) => {
      if (isIP(req.ip) === 0) {
        throw errors.invalidInput(
          'X-Forwarded-For does not give a valid client IP address',
          'Send X-Forwarded-For as a comma-separated list of IP addresses (your proxy appends the client address)',
        );
      }
    });
  }
  return app;
}

/** Metrics, the OpenAPI document, the console, rate limiting and JWT: shared by every route. */
async function registerSharedPlugins(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const { config, db } = deps;
  // Not encapsulated, so its hooks see every route; /metrics itself needs no token (scrapers).
  // With METRICS_PORT set, /metrics is served only by the separate listener (src/main.ts).
  await app.register(fastifyPlugin(metricsPlugin), {
    db,
    reads: deps.reads,
    serveRoute: config.metricsPort === undefined,
  });

  await app.register(openapiPlugin);
  // The web console (console/, built by Vite): its own scope, so its CSP header stays its own.
  await app.register(consoleRoutes, {
    loginEnabled: config.rootAdmin !== undefined && jwtAlgorithm(config) === 'HS256',
  });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => errors.rateLimited(Math.max(1, Math.ceil(ctx.ttl / 1000))),
    ...(deps.redis
      ? {
          redis: deps.redis,
          nameSpace: config.rateLimitNamespace,
          // Limits guard against abuse; they are not an access control. If Redis is down the
          // service keeps answering (unlimited) rather than failing every request.
          skipOnError: true,
        }
      : {}),
  });
  await app.register(jwtPlugin, { config, jwtSecret: deps.jwtSecret });
}

/** The services, each built once from its repository and the audit trail. */
function createServices(app: FastifyInstance, deps: AppDeps) {
  const { config, db, keyring, logger } = deps;
  const audit = new AuditRepository();
  const sealer = new AuditSealer({ db, repo: audit });
  const maintenance = new AuditMaintenance({
    db,
    repo: audit,
    interval: config.auditPartitionInterval,
    retentionDays: config.auditRetentionDays,
    archiveDir: config.auditArchiveDir,
    log: logger,
  });
  const auditWriter = new AuditWriter({
    db,
    log: logger,
    windowMs: config.auditBatchWindowMs,
    maxRows: config.auditBatchMaxRows,
    concurrency: db.kind === 'pglite' ? 1 : config.auditBatchConcurrency,
    marks: readMarks,
  });
  const trail = new AuditTrail({ db, repo: audit, writer: auditWriter, log: logger, reads: deps.reads });
  app.decorate('auditWriter', auditWriter);
  const suppressed = new SuppressedRefusals({
    record: (rows) => auditWriter.record(rows),
    log: logger,
    intervalMs: config.rateLimitSummaryIntervalMs,
  });
  app.decorate('suppressedRefusals', suppressed);
  app.addHook('onReady', async () => suppressed.start());
  app.decorateRequest('caller', null as never);
  // Registered before the routes' scopes close, so it runs after in-flight requests finished:
  // anything still queued is written before the database is closed, the summary of the
  // refusals rate limits answered without a row first.
  app.addHook('onClose', async () => {
    await suppressed.stop();
    await auditWriter.flush();
    // The batch sizes seen: how well group commit worked under this process's load.
    logger.info({ auditBatches: auditWriter.stats() }, 'audit batch statistics');
  });
  const accessKeys = new AccessKeyService({ db, repo: new AccessKeysRepository(), trail });
  const oidc = new OidcService({
    db,
    repo: new OidcRepository(),
    trail,
    keys: new IssuerKeys({
      refetchIntervalMs: config.oidcJwksRefetchIntervalMs,
      allowHttp: config.oidcAllowHttpIssuers,
    }),
    replay: deps.redis
      ? new RedisReplayGuard({ redis: deps.redis, namespace: config.rateLimitNamespace })
      : new MemoryReplayGuard(),
    allowHttpIssuers: config.oidcAllowHttpIssuers,
  });
  const limits = new Limits({
    app,
    readPerMinute: config.readRateLimit,
    authFailuresPerMinute: config.authFailureRateLimit,
    batchEntriesPerMinute: config.batchEntryRateLimit,
    refusalsPerMinute: config.refusalRateLimit,
    suppressed,
  });
  const bulkGate = new BulkGate({
    perCaller: config.bulkInFlightPerCaller,
    // PGlite has one connection: bulk work takes it in turn with everything else.
    slots: db.kind === 'pglite' ? 1 : Math.max(1, Math.floor(config.databasePoolMax * config.bulkPoolShare)),
    trail,
    entries: {
      peek: (req) => limits.peekBatchEntries(req),
      charge: (req, n) => limits.chargeBatchEntries(req, n),
    },
  });
  app.decorate('bulkGate', bulkGate);
  const repo = new SecretsRepository();
  // The one door every change to a secret goes through (single, batch, rotation).
  const changes = new Changes({
    repo,
    keyring,
    maxValueBytes: config.maxValueBytes,
    maxVersions: config.maxVersions,
  });
  const secrets = new SecretService({ db, repo, trail, changes, keyring, log: logger, reads: deps.reads });
  const environments = new EnvironmentService({ db, repo: new EnvironmentsRepository(), trail, changes });
  const kek = new KekService({ db, repo: new KekRepository(), keyring, log: logger });
  const bulkRepo = new BulkRepository();
  const bulk = new BulkService({
    db,
    repo: bulkRepo,
    trail,
    keyring,
    log: logger,
    maxRenderBytes: config.maxRenderBytes,
  });
  const batch = new BatchService({
    db,
    repo,
    audit,
    trail,
    changes,
    keyring,
    log: logger,
  });
  const exists = (name: string) => environments.exists(name);
  const compare = new CompareService({ db, trail, keyring, log: logger, exists });
  const promote = new PromoteService({
    db,
    bulk: bulkRepo,
    batch,
    trail,
    keyring,
    log: logger,
    exists,
  });
  const eventsRepo = new EventsRepository();
  // Delivery runs beside the requests: on PGlite its statements go before queued requests'
  // (src/db/admission.ts) instead of waiting behind every one of them.
  const dispatcher = new Dispatcher({
    db: db.background(),
    repo: eventsRepo,
    keyring,
    log: logger,
    config: config.events,
  });
  const webhooks = new WebhookService({
    db,
    repo: eventsRepo,
    trail,
    keyring,
    config: config.events,
    onEnabled: () => dispatcher.wake(),
  });
  const streams = new EventStreams({
    db,
    repo: eventsRepo,
    pollMs: config.events.pollMs > 0 ? config.events.pollMs : 250,
    heartbeatMs: config.events.heartbeatMs,
    perCaller: config.events.streamsPerCaller,
  });
  app.decorate('webhookDispatcher', dispatcher);
  app.decorate('eventStreams', streams);
  return {
    audit,
    webhooks,
    dispatcher,
    streams,
    sealer,
    maintenance,
    trail,
    accessKeys,
    environments,
    compare,
    promote,
    oidc,
    limits,
    bulkGate,
    changes,
    secrets,
    kek,
    bulk,
    batch,
  };
}

type Services = ReturnType<typeof createServices>;

/** Operations, login and token exchange in the open; everything else behind the guard. */
async function registerRoutes(app: FastifyInstance, deps: AppDeps, services: Services): Promise<void> {
  const { config, db } = deps;
  const { audit, sealer, trail, accessKeys, environments, compare, promote, oidc, limits, bulkGate } =
    services;
  const { changes, secrets, kek, bulk, batch, webhooks, streams } = services;
  await app.register(operationsRoutes, { db, migrationCount: deps.migrationCount, reads: deps.reads });

  await app.register(loginRoutes, {
    config,
    // A wrong password is a failed authentication like a bad token: audited and counted
    // against the per-IP failure limit that the guard enforces on the rest of /api.
    onFailure: async (req) => {
      await limits.countAuthFailure(req);
      await trail.refused(
        callerOf(req, null),
        'auth.failed',
        [null],
        withOutcome(errors.badLogin(), 'bad_login'),
      );
    },
    onLimited: (req) => limits.loginLimited(req),
  });

  await app.register(tokenExchangeRoutes, {
    oidc,
    checkFailures: (req) => limits.checkAuthFailures(req),
    countFailure: (req) => limits.countAuthFailure(req),
  });

  // Everything under /api except login and the token exchange requires a credential (admin JWT or ik_ access key);
  // the guard authenticates before the body is parsed, so unauthenticated callers learn
  // nothing about the schema, and enforces each route's config.access (src/auth/guard.ts).
  await app.register(async (secured) => {
    documentSecurity(secured);
    installGuard(secured, { trail, accessKeys, workloads: oidc, limits, environments });
    // One set of secret routes, mounted twice: the InsForge API is the default environment,
    // and every other environment has the same surface under /api/environments/:env/secrets.
    for (const [where, base] of [
      ['default', DEFAULT_BASE],
      ['param', ENVIRONMENT_BASE],
    ] as const) {
      await secured.register(async (scope) => {
        scope.addHook('onRoute', addressing(where));
        await scope.register(secretRoutes, { secrets, base });
        await scope.register(versionRoutes, { secrets, base });
        await scope.register(bulkRoutes, { bulk, limits, gate: bulkGate, base });
        await scope.register(batchRoutes, { batch, gate: bulkGate, base });
      });
    }
    await secured.register(kekRoutes, { kek, trail, recordFor: (caller) => changes.rotated(caller) });
    await secured.register(accessKeyRoutes, { accessKeys });
    await secured.register(environmentRoutes, { environments, compare, promote, gate: bulkGate });
    await secured.register(trustRoutes, { oidc });
    await secured.register(auditRoutes, { db, repo: audit, sealer });
    await secured.register(whoamiRoutes);
    await secured.register(webhookRoutes, { webhooks });
    await secured.register(eventStreamRoutes, { streams, trail });
  });
}

/**
 * Sealing the chain and partition upkeep in the background (src/audit/jobs.ts): started when
 * the app is ready (one maintenance round before it serves), stopped when it closes.
 */
function scheduleAuditJobs(app: FastifyInstance, deps: AppDeps, { sealer, maintenance }: Services): void {
  const { config, logger } = deps;
  const jobs = new AuditJobs({
    sealer,
    maintenance,
    sealIntervalMs: config.auditSealIntervalMs,
    maintenanceIntervalMs: config.auditMaintenanceIntervalMs,
    log: logger,
  });
  app.addHook('onReady', async () => jobs.start());
  app.addHook('onClose', async () => jobs.stop());
}

/**
 * Webhook delivery and the expiring-secret sweep (src/events/dispatcher.ts), on timers like
 * the audit jobs; stopped (awaiting requests in flight, each bounded by WEBHOOK_TIMEOUT_MS)
 * before the database closes.
 */
function scheduleEventJobs(app: FastifyInstance, { dispatcher }: Services): void {
  app.addHook('onReady', async () => dispatcher.start());
  app.addHook('onClose', async () => dispatcher.stop());
}
