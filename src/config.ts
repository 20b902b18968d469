import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * One validated, frozen configuration object built from the environment.
 * Only the process entry (src/main.ts and the CLIs) calls loadConfig; everything else
 * receives the object, so tests build apps with whatever configuration they need.
 */

const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);

/** Parses durations like 90s, 15m, 1h, 7d (or plain seconds) into seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m?.[1]) throw new Error(`invalid duration "${text}": use e.g. 900, 15m, 1h or 7d`);
  const n = Number(m[1]);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? ''] ?? 1;
  if (n <= 0) throw new Error('a duration must be positive');
  return n * unit;
}

const duration = z.string().transform((s, ctx) => {
  try {
    return parseDuration(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/**
 * TRUST_PROXY: false, a hop count, or a comma list of proxy addresses/CIDRs (what Fastify's
 * trustProxy accepts). `true` would trust every X-Forwarded-For hop, so a client could pick
 * its own address (escaping per-address limits, forging the audit clientIp): refused.
 */
export type TrustProxy = false | number | string[];
const trustProxy = z.string().transform((raw, ctx): TrustProxy => {
  const s = raw.trim().toLowerCase();
  if (['false', '0', 'no'].includes(s)) return false;
  if (['true', 'yes'].includes(s)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'true would trust every X-Forwarded-For hop (a client could choose its own address): set the number of proxies in front of the service (e.g. 1) or their addresses/CIDRs (e.g. 10.0.0.0/8,192.168.1.5)',
    });
    return z.NEVER;
  }
  if (/^\d{1,2}$/.test(s)) return Number(s);
  const list = raw.split(',').map((p) => p.trim());
  const bad = list.filter((p) => !isIpOrCidr(p));
  if (bad.length > 0 || list.length === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be false, a hop count or a comma list of IP addresses/CIDRs; not an address: ${bad.join(', ')}`,
    });
    return z.NEVER;
  }
  return list;
});

function isIpOrCidr(p: string): boolean {
  const [addr, bits, extra] = p.split('/');
  if (extra !== undefined || !addr) return false;
  const v = isIP(addr);
  if (v === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (v === 4 ? 32 : 128);
}
/**
 * DATABASE_READ_URL: one PostgreSQL URL, a comma list of them, or a libpq multi-host URL
 * (postgres://user@h1:5432,h2:5432/db?...), which stands for one URL per host with the same
 * user, database and parameters. Each host gets its own pool and its own lag check.
 */
export function splitReadUrls(raw: string): string[] {
  const urls: string[] = [];
  for (const part of raw.split(/,(?=\s*postgres(?:ql)?:\/\/)/)) {
    const m = /^(postgres(?:ql)?:\/\/(?:[^@/?#]*@)?)([^/?#]+)(.*)$/.exec(part.trim());
    if (!m?.[1] || !m[2]) {
      throw new Error(
        'must be postgres:// URLs (a comma list, or one URL listing several hosts as host1:port1,host2:port2)',
      );
    }
    for (const host of m[2].split(',')) {
      if (!host.trim()) throw new Error('lists an empty host');
      urls.push(`${m[1]}${host.trim()}${m[3] ?? ''}`);
    }
  }
  return urls;
}

const readUrls = z.string().transform((s, ctx) => {
  try {
    return splitReadUrls(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());

export const envSchema = z
  .object({
    NODE_ENV: z.preprocess(
      emptyAsUndefined,
      z.enum(['development', 'production', 'test']).default('development'),
    ),
    HOST: z.preprocess(emptyAsUndefined, z.string().default('127.0.0.1')),
    PORT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(0).max(65535).default(7130)),
    LOG_LEVEL: z.preprocess(
      emptyAsUndefined,
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ),
    LOG_BUFFER_BYTES: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).max(65_536).default(4096),
    ),
    DATABASE_URL: optionalString,
    DATABASE_POOL_MAX: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(1000).default(20)),
    DATABASE_PREPARED_STATEMENTS: z.preprocess(emptyAsUndefined, bool.default(true)),
    DATABASE_READ_URL: z.preprocess(emptyAsUndefined, readUrls.optional()),
    DATABASE_READ_MAX_LAG_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(10).max(3_600_000).default(1000),
    ),
    DATABASE_CONNECT_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    ),
    // Set but empty is a mistake (an unset variable in a script, DATA_DIR=$UNSET): falling
    // back to ./data would quietly open or create another database in the working directory.
    DATA_DIR: z
      .string()
      .min(1, {
        message:
          'is set but empty: unset it to use ./data, or give the directory that holds the embedded database and its generated keys',
      })
      .default('./data'),
    // PostgreSQL's buffer pool inside embedded PGlite. Its 128MB default is most of the
    // process's memory after a few thousand reads; the pages also sit in the OS file cache,
    // so a smaller pool costs a system call on a miss, not a disk read (docs/benchmarks.md).
    PGLITE_SHARED_BUFFERS: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .regex(/^\d{1,6}(kB|MB|GB)$/, { message: 'must be a PostgreSQL size such as 16MB or 128MB' })
        .default('16MB'),
    ),
    ENCRYPTION_KEY: optionalString,
    ENCRYPTION_KEYS: optionalString,
    ENCRYPTION_ACTIVE_KID: optionalString,
    JWT_SECRET: optionalString,
    JWT_PUBLIC_KEY: optionalString,
    JWT_ALGORITHM: z.preprocess(emptyAsUndefined, z.enum(['HS256', 'RS256', 'ES256']).optional()),
    JWT_ISSUER: optionalString,
    JWT_AUDIENCE: optionalString,
    ADMIN_ROLE: z.preprocess(emptyAsUndefined, z.string().min(1).default('project_admin')),
    ROOT_ADMIN_USERNAME: optionalString,
    ROOT_ADMIN_PASSWORD: optionalString,
    MAX_VALUE_BYTES: z.preprocess(
      emptyAsUndefined,
      z.coerce
        .number()
        .int()
        .min(1)
        .max(1024 * 1024)
        .default(64 * 1024),
    ),
    MAX_VERSIONS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(1000).default(20)),
    LOGIN_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(10)),
    TRUST_PROXY: z.preprocess(emptyAsUndefined, trustProxy.default(false)),
    MAX_RENDER_BYTES: z.preprocess(
      emptyAsUndefined,
      z.coerce
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
    ),
    JWT_MAX_TTL: z.preprocess(emptyAsUndefined, duration.default(24 * 3600)),
    METRICS_PORT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(0).max(65535).optional()),
    BULK_IN_FLIGHT_PER_CALLER: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(1000).default(2),
    ),
    BULK_POOL_SHARE: z.preprocess(emptyAsUndefined, z.coerce.number().gt(0).max(1).default(0.5)),
    BATCH_ENTRY_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(10_000)),
    REQUEST_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(3_600_000).default(30_000),
    ),
    HEADERS_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(3_600_000).default(10_000),
    ),
    KEEP_ALIVE_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(3_600_000).default(5_000),
    ),
    READ_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(600)),
    AUTH_FAILURE_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(20)),
    REDIS_URL: optionalString,
    RATE_LIMIT_NAMESPACE: z.preprocess(emptyAsUndefined, z.string().min(1).default('secrets-rl:')),
    OIDC_ALLOW_HTTP_ISSUERS: z.preprocess(emptyAsUndefined, bool.default(false)),
    OIDC_JWKS_REFETCH_INTERVAL_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    ),
    WEBHOOK_ALLOW_HTTP: z.preprocess(emptyAsUndefined, bool.default(false)),
    WEBHOOK_ALLOW_PRIVATE: z.preprocess(emptyAsUndefined, bool.default(false)),
    WEBHOOK_POLL_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(0).default(250)),
    WEBHOOK_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(100).max(60_000).default(10_000),
    ),
    WEBHOOK_RETRY_BASE_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(5_000)),
    WEBHOOK_RETRY_MAX_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce
        .number()
        .int()
        .min(1)
        .default(6 * 3_600_000),
    ),
    WEBHOOK_MAX_ATTEMPTS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(100).default(12)),
    WEBHOOK_DISABLE_AFTER_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce
        .number()
        .int()
        .min(0)
        .default(5 * 86_400_000),
    ),
    WEBHOOK_DISABLE_MIN_FAILURES: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(20)),
    WEBHOOK_SECRET_GRACE: z.preprocess(emptyAsUndefined, duration.default(86_400)),
    EVENTS_EXPIRING_BEFORE: z.preprocess(emptyAsUndefined, duration.default(7 * 86_400)),
    EVENTS_RETENTION_DAYS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(7)),
    EVENTS_HEARTBEAT_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(10).default(15_000)),
    EVENT_STREAMS_PER_CALLER: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(1000).default(5),
    ),
    AUDIT_SEAL_INTERVAL_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(0).default(1000)),
    AUDIT_PARTITION_INTERVAL: z.preprocess(emptyAsUndefined, z.enum(['day', 'month']).default('day')),
    AUDIT_RETENTION_DAYS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).max(36500).default(0),
    ),
    AUDIT_ARCHIVE_DIR: optionalString,
    AUDIT_MAINTENANCE_INTERVAL_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).default(3_600_000),
    ),
    AUDIT_BATCH_WINDOW_MS: z.preprocess(emptyAsUndefined, z.coerce.number().min(0).max(1000).default(1)),
    AUDIT_BATCH_CONCURRENCY: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(64).default(2),
    ),
    AUDIT_BATCH_MAX_ROWS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(10_000).default(128),
    ),
  })
  .superRefine((env, ctx) => {
    if (env.JWT_SECRET !== undefined && Buffer.byteLength(env.JWT_SECRET) < 32) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET'],
        message: 'must be at least 32 bytes (generate one with: openssl rand -base64 48)',
      });
    }
    if ((env.ROOT_ADMIN_USERNAME === undefined) !== (env.ROOT_ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['ROOT_ADMIN_PASSWORD'],
        message: 'ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD must be set together',
      });
    }
    if (env.DATABASE_READ_URL !== undefined && env.DATABASE_URL === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['DATABASE_READ_URL'],
        message:
          'read replicas need a PostgreSQL primary: set DATABASE_URL too (the embedded PGlite database has no replicas), or unset DATABASE_READ_URL',
      });
    }
    if (env.JWT_ALGORITHM && env.JWT_ALGORITHM !== 'HS256' && !env.JWT_PUBLIC_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_PUBLIC_KEY'],
        message: `is required when JWT_ALGORITHM is ${env.JWT_ALGORITHM}`,
      });
    }
  });

export type Env = z.output<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`),
    );
  }
  return deepFreeze(configFrom(parsed.data));
}

/**
 * The configuration object from the validated environment: each setting is written here
 * once beside its variable's schema in envSchema, and the Config type is what this returns.
 */
function configFrom(e: Env) {
  return {
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    /** JSON log lines are written to stdout in chunks of about this many bytes (0: each line at once). */
    logBufferBytes: e.LOG_BUFFER_BYTES,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    /** Named prepared statements on the hot path; false behind PgBouncer < 1.21 in transaction mode. */
    databasePreparedStatements: e.DATABASE_PREPARED_STATEMENTS,
    /**
     * Streaming replicas that serve value reads and metadata lists (one URL, a comma list of
     * URLs, or a multi-host URL: one pool per host); undefined: the primary serves everything.
     */
    databaseReadUrls: e.DATABASE_READ_URL ?? [],
    /** A replica further behind the primary than this (or of unknown lag) serves nothing. */
    databaseReadMaxLagMs: e.DATABASE_READ_MAX_LAG_MS,
    /** How long start-up retries the first PostgreSQL connection (0: try once). */
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    dataDir: e.DATA_DIR,
    /** shared_buffers of the embedded PGlite (e.g. 16MB). */
    pgliteSharedBuffers: e.PGLITE_SHARED_BUFFERS,
    encryption: { key: e.ENCRYPTION_KEY, keys: e.ENCRYPTION_KEYS, activeKid: e.ENCRYPTION_ACTIVE_KID },
    jwt: {
      secret: e.JWT_SECRET,
      publicKey: e.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n'),
      algorithm: e.JWT_ALGORITHM,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      adminRole: e.ADMIN_ROLE,
      /** Longest accepted token lifetime, in seconds (exp - now). */
      maxTtlSeconds: e.JWT_MAX_TTL,
    },
    rootAdmin:
      e.ROOT_ADMIN_USERNAME !== undefined && e.ROOT_ADMIN_PASSWORD !== undefined
        ? { username: e.ROOT_ADMIN_USERNAME, password: e.ROOT_ADMIN_PASSWORD }
        : undefined,
    maxValueBytes: e.MAX_VALUE_BYTES,
    /** How many versions of each secret are kept; older ones are pruned when a version is added. */
    maxVersions: e.MAX_VERSIONS,
    loginRateLimit: e.LOGIN_RATE_LIMIT,
    /** false, a hop count, or the proxies' addresses/CIDRs. */
    trustProxy: e.TRUST_PROXY,
    /** The largest rendered template, in bytes of UTF-8. */
    maxRenderBytes: e.MAX_RENDER_BYTES,
    /** When set, /metrics is served on this port only (not on PORT). */
    metricsPort: e.METRICS_PORT,
    /** Value reads per identity per minute. */
    readRateLimit: e.READ_RATE_LIMIT,
    /** Bulk requests (batch, export, render) one caller may have in flight; more answer 429. */
    bulkInFlightPerCaller: e.BULK_IN_FLIGHT_PER_CALLER,
    /** Share of the database pool bulk requests may use at once; the rest stays for single-key work. */
    bulkPoolShare: e.BULK_POOL_SHARE,
    /** Batch-import entries per identity per minute; a batch that does not fit is refused whole (429). */
    batchEntryRateLimit: e.BATCH_ENTRY_RATE_LIMIT,
    /** Longest a whole request (headers and body) may take to arrive; then 408 and close. */
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    /** Longest the request headers may take to arrive. */
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    /** How long an idle keep-alive connection stays open. */
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    /** Failed authentications per client IP per minute. */
    authFailureRateLimit: e.AUTH_FAILURE_RATE_LIMIT,
    /** Rate-limit counters live here when set, shared by every instance. */
    redisUrl: e.REDIS_URL,
    rateLimitNamespace: e.RATE_LIMIT_NAMESPACE,
    /** Workload identity: accept http:// trust issuers (a local test issuer only; off by default). */
    oidcAllowHttpIssuers: e.OIDC_ALLOW_HTTP_ISSUERS,
    /** Least time between two refetches of one issuer's JWKS for an unknown kid. */
    oidcJwksRefetchIntervalMs: e.OIDC_JWKS_REFETCH_INTERVAL_MS,
    /** Change events and webhooks (docs/events.md). */
    events: {
      allowHttp: e.WEBHOOK_ALLOW_HTTP,
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
      pollMs: e.WEBHOOK_POLL_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      disableAfterMs: e.WEBHOOK_DISABLE_AFTER_MS,
      disableMinFailures: e.WEBHOOK_DISABLE_MIN_FAILURES,
      secretGraceSeconds: e.WEBHOOK_SECRET_GRACE,
      expiringBeforeSeconds: e.EVENTS_EXPIRING_BEFORE,
      retentionDays: e.EVENTS_RETENTION_DAYS,
      heartbeatMs: e.EVENTS_HEARTBEAT_MS,
      /** Open GET /api/events streams one caller may hold per instance; more answer 429. */
      streamsPerCaller: e.EVENT_STREAMS_PER_CALLER,
    },
    /** How often the audit sealer runs; 0 seals only before /api/audit/verify. */
    auditSealIntervalMs: e.AUDIT_SEAL_INTERVAL_MS,
    /** audit_log partitions: one per UTC day or month. */
    auditPartitionInterval: e.AUDIT_PARTITION_INTERVAL,
    /** Archive and drop sealed partitions older than this many days; 0 keeps everything. */
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    /** Where archived partitions are written (JSON Lines and a manifest). */
    auditArchiveDir: e.AUDIT_ARCHIVE_DIR ?? join(e.DATA_DIR, 'audit-archive'),
    /** How often partitions are created ahead and expired ones archived; 0 only at start-up. */
    auditMaintenanceIntervalMs: e.AUDIT_MAINTENANCE_INTERVAL_MS,
    /** Group commit: how long the first audit row of a batch waits for others to join it. */
    auditBatchWindowMs: e.AUDIT_BATCH_WINDOW_MS,
    /** Group commit: a batch is written as soon as it holds this many rows. */
    auditBatchMaxRows: e.AUDIT_BATCH_MAX_ROWS,
    /** Group commit: batches in flight at once on PostgreSQL (PGlite: always 1). */
    auditBatchConcurrency: e.AUDIT_BATCH_CONCURRENCY,
  };
}

/** Read-only at the top and in its nested groups (encryption, jwt, rootAdmin); lists read-only too. */
type Settings<T> = {
  readonly [K in keyof T]: T[K] extends readonly (infer U)[]
    ? readonly U[]
    : T[K] extends TrustProxy
      ? T[K]
      : T[K] extends object | undefined
        ? Readonly<T[K]>
        : T[K];
};

/** The service's configuration, validated and frozen (loadConfig). */
export type Config = Settings<ReturnType<typeof configFrom>>;
/** Change events and webhooks: delivery, retries, SSRF switches, the stream (docs/events.md). */
export type EventsConfig = Config['events'];
