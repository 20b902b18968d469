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

/** A variable read by a parser that throws with the message to show. */
function parsedBy<T>(parse: (text: string) => T) {
  return z.string().transform((s, ctx) => {
    try {
      return parse(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

const durationText = parsedBy(parseDuration);

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

const readUrls = parsedBy(splitReadUrls);

const boolText = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/* Schema helpers: an empty variable counts as unset, then the default (if any) applies. */
const unsetIfEmpty = <S extends z.ZodType>(schema: S) => z.preprocess(emptyAsUndefined, schema);

interface IntRange {
  min: number;
  max?: number;
}
/** A whole number in [min, max]; without a default the setting may stay unset. */
function int(o: IntRange & { default: number }): z.ZodType<number, unknown>;
function int(o: IntRange): z.ZodType<number | undefined, unknown>;
function int(o: IntRange & { default?: number }): z.ZodType {
  let n = z.coerce.number().int().min(o.min);
  if (o.max !== undefined) n = n.max(o.max);
  return unsetIfEmpty(o.default === undefined ? n.optional() : n.default(o.default));
}
/** A number (not necessarily whole) in (gt, max] or [min, max]. */
function num(o: ({ min: number } | { gt: number }) & { max: number; default: number }) {
  const n = z.coerce.number();
  return unsetIfEmpty(('gt' in o ? n.gt(o.gt) : n.min(o.min)).max(o.max).default(o.default));
}
const bool = (fallback: boolean) => unsetIfEmpty(boolText.default(fallback));
/** 900, 15m, 1h or 7d, read as seconds. */
const duration = (fallbackSeconds: number) => unsetIfEmpty(durationText.default(fallbackSeconds));
function oneOf<const V extends readonly [string, ...string[]]>(values: V, fallback: V[number]) {
  return unsetIfEmpty(z.enum(values).default(fallback));
}
const text = (fallback: string) => unsetIfEmpty(z.string().min(1).default(fallback));
const optionalText = unsetIfEmpty(z.string().optional());

/**
 * One setting: the variable(s) it is read from, their schemas, and how the configuration value is made from the validated variables (the whole environment is passed
 * for settings whose default depends on another one).
 */
interface Setting<Out> {
  readonly vars: Readonly<Record<string, z.ZodType>>;
  readonly read: (env: Readonly<Record<string, unknown>>) => Out;
}

function setting<S extends z.ZodType>(name: string, schema: S): Setting<z.output<S>>;
function setting<S extends z.ZodType, Out>(
  name: string,
  schema: S,
  finish: (value: z.output<S>, env: Readonly<Record<string, unknown>>) => Out,
): Setting<Out>;
function setting(
  name: string,
  schema: z.ZodType,
  finish: (value: unknown, env: Readonly<Record<string, unknown>>) => unknown = (v) => v,
): Setting<unknown> {
  return { vars: { [name]: schema }, read: (env) => finish(env[name], env) };
}

/** A setting read from several variables at once. */
function combined<V extends Record<string, z.ZodType>, Out>(
  vars: V,
  read: (values: { [K in keyof V]: z.output<V[K]> }) => Out,
): Setting<Out> {
  return { vars, read: (env) => read(env as { [K in keyof V]: z.output<V[K]> }) };
}

type SettingTree = { readonly [name: string]: Setting<unknown> | SettingTree };

/**
 * Every setting, written once at its place in the Config object: its variable, its schema and
 * default, and its one-line doc (the comment above it, which Config's property carries too). envSchema, the Config type and the README's table all follow from it
 * (test/unit/config.test.ts checks the README).
 */
const settings = {
  /** Production refuses to start without ENCRYPTION_KEY and JWT_SECRET. */
  nodeEnv: setting('NODE_ENV', oneOf(['development', 'production', 'test'], 'development')),
  /** Listen address. */
  host: setting('HOST', unsetIfEmpty(z.string().default('127.0.0.1'))),
  /** HTTP port. */
  port: setting('PORT', int({ min: 0, max: 65535, default: 7130 })),
  /** The pino level. */
  logLevel: setting(
    'LOG_LEVEL',
    oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  ),
  /** JSON log lines are written to stdout in chunks of about this many bytes (0: each line at once). */
  logBufferBytes: setting('LOG_BUFFER_BYTES', int({ min: 0, max: 65_536, default: 4096 })),
  /** PostgreSQL primary; unset: embedded PGlite in DATA_DIR. */
  databaseUrl: setting('DATABASE_URL', optionalText),
  /** The pg pool size per instance (and per read replica). */
  databasePoolMax: setting('DATABASE_POOL_MAX', int({ min: 1, max: 1000, default: 20 })),
  /** Named prepared statements on the hot path; false behind PgBouncer < 1.21 in transaction mode. */
  databasePreparedStatements: setting('DATABASE_PREPARED_STATEMENTS', bool(true)),
  /**
   * Streaming replicas that serve value reads and metadata lists (one URL, a comma list of
   * URLs, or a multi-host URL: one pool per host); none: the primary serves everything.
   */
  databaseReadUrls: setting('DATABASE_READ_URL', unsetIfEmpty(readUrls.optional()), (urls) => urls ?? []),
  /** A replica further behind the primary than this (or of unknown lag) serves nothing. */
  databaseReadMaxLagMs: setting('DATABASE_READ_MAX_LAG_MS', int({ min: 10, max: 3_600_000, default: 1000 })),
  /** How long start-up retries the first PostgreSQL connection (0: try once). */
  databaseConnectTimeoutMs: setting(
    'DATABASE_CONNECT_TIMEOUT_MS',
    int({ min: 0, max: 3_600_000, default: 30_000 }),
  ),
  // Set but empty is a mistake (an unset variable in a script, DATA_DIR=$UNSET): falling
  // back to ./data would quietly open or create another database in the working directory.
  /** PGlite files and (outside production) generated keys. */
  dataDir: setting(
    'DATA_DIR',
    z
      .string()
      .min(1, {
        message:
          'is set but empty: unset it to use ./data, or give the directory that holds the embedded database and its generated keys',
      })
      .default('./data'),
  ),
  // PostgreSQL's buffer pool inside embedded PGlite. Its 128MB default is most of the
  // process's memory after a few thousand reads; the pages also sit in the OS file cache,
  // so a smaller pool costs a system call on a miss, not a disk read (docs/benchmarks.md).
  /** The shared_buffers of the embedded PGlite (e.g. 16MB). */
  pgliteSharedBuffers: setting(
    'PGLITE_SHARED_BUFFERS',
    unsetIfEmpty(
      z
        .string()
        .regex(/^\d{1,6}(kB|MB|GB)$/, { message: 'must be a PostgreSQL size such as 16MB or 128MB' })
        .default('16MB'),
    ),
  ),
  encryption: {
    /** 32-byte key-encryption key, base64 or hex (kid k1). */
    key: setting('ENCRYPTION_KEY', optionalText),
    /** Keyring kid:key,kid:key for rotation; the last is active. */
    keys: setting('ENCRYPTION_KEYS', optionalText),
    /** Which kid seals new values. */
    activeKid: setting('ENCRYPTION_ACTIVE_KID', optionalText),
  },
  jwt: {
    /** HS256 secret, at least 32 bytes. */
    secret: setting('JWT_SECRET', optionalText),
    /** PEM public key for RS256/ES256 (`\\n` escapes are read as newlines). */
    publicKey: setting('JWT_PUBLIC_KEY', optionalText, (pem) => pem?.replace(/\\n/g, '\n')),
    /** The one accepted algorithm. */
    algorithm: setting('JWT_ALGORITHM', unsetIfEmpty(z.enum(['HS256', 'RS256', 'ES256']).optional())),
    /** When set, tokens must carry this iss. */
    issuer: setting('JWT_ISSUER', optionalText),
    /** When set, tokens must carry this aud. */
    audience: setting('JWT_AUDIENCE', optionalText),
    /** The role claim that grants admin access. */
    adminRole: setting('ADMIN_ROLE', text('project_admin')),
    /** Longest accepted token lifetime, in seconds (exp - now). */
    maxTtlSeconds: setting('JWT_MAX_TTL', duration(24 * 3600)),
  },
  /** Enable POST /api/auth/admin/sessions (both or neither). */
  rootAdmin: combined({ ROOT_ADMIN_USERNAME: optionalText, ROOT_ADMIN_PASSWORD: optionalText }, (v) =>
    v.ROOT_ADMIN_USERNAME !== undefined && v.ROOT_ADMIN_PASSWORD !== undefined
      ? { username: v.ROOT_ADMIN_USERNAME, password: v.ROOT_ADMIN_PASSWORD }
      : undefined,
  ),
  /** Largest value, in bytes of UTF-8. */
  maxValueBytes: setting('MAX_VALUE_BYTES', int({ min: 1, max: 1024 * 1024, default: 64 * 1024 })),
  /** Versions kept per secret; older ones are pruned when a version is added. */
  maxVersions: setting('MAX_VERSIONS', int({ min: 1, max: 1000, default: 20 })),
  /** Login attempts per minute per client IP. */
  loginRateLimit: setting('LOGIN_RATE_LIMIT', int({ min: 1, default: 10 })),
  /** False, a hop count, or the proxies' addresses/CIDRs. */
  trustProxy: setting('TRUST_PROXY', unsetIfEmpty(trustProxy.default(false))),
  /** The largest rendered template, in bytes of UTF-8. */
  maxRenderBytes: setting(
    'MAX_RENDER_BYTES',
    int({ min: 1024, max: 64 * 1024 * 1024, default: 1024 * 1024 }),
  ),
  /** When set, /metrics is served on this port only (not on PORT). */
  metricsPort: setting('METRICS_PORT', int({ min: 0, max: 65535 })),
  /** Value reads per identity per minute. */
  readRateLimit: setting('READ_RATE_LIMIT', int({ min: 1, default: 600 })),
  /** Bulk requests (batch, export, render) one caller may have in flight; more answer 429. */
  bulkInFlightPerCaller: setting('BULK_IN_FLIGHT_PER_CALLER', int({ min: 1, max: 1000, default: 2 })),
  /** Share of the database pool bulk requests may use at once; the rest stays for single-key work. */
  bulkPoolShare: setting('BULK_POOL_SHARE', num({ gt: 0, max: 1, default: 0.5 })),
  /** Batch-import entries per identity per minute; a batch that does not fit is refused whole (429). */
  batchEntryRateLimit: setting('BATCH_ENTRY_RATE_LIMIT', int({ min: 1, default: 10_000 })),
  /** Longest a whole request (headers and body) may take to arrive; then 408 and close. */
  requestTimeoutMs: setting('REQUEST_TIMEOUT_MS', int({ min: 1, max: 3_600_000, default: 30_000 })),
  /** Longest the request headers may take to arrive. */
  headersTimeoutMs: setting('HEADERS_TIMEOUT_MS', int({ min: 1, max: 3_600_000, default: 10_000 })),
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: setting('KEEP_ALIVE_TIMEOUT_MS', int({ min: 1, max: 3_600_000, default: 5_000 })),
  /**
   * Refused requests (400, 403, 413, 415, 429) per authenticated identity per minute; past
   * it, the identity's requests are answered 429 before their body is read.
   */
  refusalRateLimit: setting('REFUSAL_RATE_LIMIT', int({ min: 1, default: 120 })),
  /**
   * How often each instance writes its summary audit rows of the refusals that rate limits
   * answered without a row each (src/audit/suppressed.ts); they are also written on close.
   */
  rateLimitSummaryIntervalMs: setting(
    'RATE_LIMIT_SUMMARY_INTERVAL_MS',
    int({ min: 1000, max: 3_600_000, default: 60_000 }),
  ),
  /** Failed authentications per client IP per minute. */
  authFailureRateLimit: setting('AUTH_FAILURE_RATE_LIMIT', int({ min: 1, default: 20 })),
  /** Rate-limit counters live here when set, shared by every instance. */
  redisUrl: setting('REDIS_URL', optionalText),
  /** Redis key prefix. */
  rateLimitNamespace: setting('RATE_LIMIT_NAMESPACE', text('secrets-rl:')),
  /** Workload identity: accept http:// trust issuers (a local test issuer only). */
  oidcAllowHttpIssuers: setting('OIDC_ALLOW_HTTP_ISSUERS', bool(false)),
  /** Least time between two refetches of one issuer's JWKS for an unknown kid. */
  oidcJwksRefetchIntervalMs: setting(
    'OIDC_JWKS_REFETCH_INTERVAL_MS',
    int({ min: 0, max: 3_600_000, default: 30_000 }),
  ),
  /** Change events and webhooks (docs/events.md). */
  events: {
    /** Accept http:// webhook destinations. */
    allowHttp: setting('WEBHOOK_ALLOW_HTTP', bool(false)),
    /** Accept webhook destinations on loopback, private, link-local or metadata addresses. */
    allowPrivate: setting('WEBHOOK_ALLOW_PRIVATE', bool(false)),
    /** How often an instance claims due deliveries (0: this instance delivers none). */
    pollMs: setting('WEBHOOK_POLL_MS', int({ min: 0, default: 250 })),
    /** Per delivery attempt. */
    timeoutMs: setting('WEBHOOK_TIMEOUT_MS', int({ min: 100, max: 60_000, default: 10_000 })),
    /**
     * How long a fan-out batch may hold the shared cursor for its requests (a slow receiver):
     * then it settles, its requests still in flight recorded when they end.
     */
    settleAfterMs: setting('WEBHOOK_SETTLE_AFTER_MS', int({ min: 10, max: 60_000, default: 1_000 })),
    /** First retry backoff. */
    retryBaseMs: setting('WEBHOOK_RETRY_BASE_MS', int({ min: 1, default: 5_000 })),
    /** Largest retry backoff. */
    retryMaxMs: setting('WEBHOOK_RETRY_MAX_MS', int({ min: 1, default: 6 * 3_600_000 })),
    /** Delivery attempts before a delivery fails. */
    maxAttempts: setting('WEBHOOK_MAX_ATTEMPTS', int({ min: 1, max: 100, default: 12 })),
    /** A subscription failing this long (and WEBHOOK_DISABLE_MIN_FAILURES times) is disabled. */
    disableAfterMs: setting('WEBHOOK_DISABLE_AFTER_MS', int({ min: 0, default: 5 * 86_400_000 })),
    /** Failures in a row before a subscription may be disabled. */
    disableMinFailures: setting('WEBHOOK_DISABLE_MIN_FAILURES', int({ min: 1, default: 20 })),
    /** How long a rotated-out signing secret keeps signing. */
    secretGraceSeconds: setting('WEBHOOK_SECRET_GRACE', duration(86_400)),
    /** Secret.expiring is emitted this long before expiresAt. */
    expiringBeforeSeconds: setting('EVENTS_EXPIRING_BEFORE', duration(7 * 86_400)),
    /** Change events are kept this long. */
    retentionDays: setting('EVENTS_RETENTION_DAYS', int({ min: 1, default: 7 })),
    /** Heartbeat of GET /api/events. */
    heartbeatMs: setting('EVENTS_HEARTBEAT_MS', int({ min: 10, default: 15_000 })),
    /** Open GET /api/events streams one caller may hold per instance; more answer 429. */
    streamsPerCaller: setting('EVENT_STREAMS_PER_CALLER', int({ min: 1, max: 1000, default: 5 })),
  },
  /** How often the audit sealer runs; 0 seals only before /api/audit/verify. */
  auditSealIntervalMs: setting('AUDIT_SEAL_INTERVAL_MS', int({ min: 0, default: 1000 })),
  /** Audit_log partitions: one per UTC day or month. */
  auditPartitionInterval: setting('AUDIT_PARTITION_INTERVAL', oneOf(['day', 'month'], 'day')),
  /** Archive and drop sealed partitions older than this many days; 0 keeps everything. */
  auditRetentionDays: setting('AUDIT_RETENTION_DAYS', int({ min: 0, max: 36500, default: 0 })),
  /** Where archived partitions are written (JSON Lines and a manifest); default DATA_DIR/audit-archive. */
  auditArchiveDir: setting(
    'AUDIT_ARCHIVE_DIR',
    optionalText,
    (dir, env) => dir ?? join(env.DATA_DIR as string, 'audit-archive'),
  ),
  /** How often partitions are created ahead and expired ones archived; 0 only at start-up. */
  auditMaintenanceIntervalMs: setting('AUDIT_MAINTENANCE_INTERVAL_MS', int({ min: 0, default: 3_600_000 })),
  /** Group commit: how long the first audit row of a batch waits for others to join it. */
  auditBatchWindowMs: setting('AUDIT_BATCH_WINDOW_MS', num({ min: 0, max: 1000, default: 1 })),
  /** Group commit: a batch is written as soon as it holds this many rows. */
  auditBatchMaxRows: setting('AUDIT_BATCH_MAX_ROWS', int({ min: 1, max: 10_000, default: 128 })),
  /** Group commit: batches in flight at once on PostgreSQL (PGlite: always 1). */
  auditBatchConcurrency: setting('AUDIT_BATCH_CONCURRENCY', int({ min: 1, max: 64, default: 2 })),
} satisfies SettingTree;

function isSetting(node: Setting<unknown> | SettingTree): node is Setting<unknown> {
  return typeof node.read === 'function';
}

function leaves(tree: SettingTree): Setting<unknown>[] {
  return Object.values(tree).flatMap((node) => (isSetting(node) ? [node] : leaves(node)));
}

/** Every environment variable the service reads (the README's configuration table lists them). */
export const settingVariables: readonly string[] = leaves(settings).flatMap((s) => Object.keys(s.vars));

/** The variables as they are after validation, for the cross-field checks below. */
interface CheckedEnv {
  readonly DATABASE_URL?: string;
  readonly DATABASE_READ_URL?: string[];
  readonly JWT_SECRET?: string;
  readonly JWT_PUBLIC_KEY?: string;
  readonly JWT_ALGORITHM?: string;
  readonly ROOT_ADMIN_USERNAME?: string;
  readonly ROOT_ADMIN_PASSWORD?: string;
}

export const envSchema = z
  .object(Object.assign({}, ...leaves(settings).map((s) => s.vars)) as Record<string, z.ZodType>)
  .superRefine((parsed, ctx) => {
    const env = parsed as CheckedEnv;
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
  return deepFreeze(build(settings, parsed.data) as Config);
}

function build(tree: SettingTree, env: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(tree).map(([path, node]) => [path, isSetting(node) ? node.read(env) : build(node, env)]),
  );
}

/** The plain values a setting tree stands for. */
type Values<T> = { [K in keyof T]: T[K] extends Setting<infer O> ? O : Values<T[K]> };

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
export type Config = Settings<Values<typeof settings>>;
/** Change events and webhooks: delivery, retries, SSRF switches, the stream (docs/events.md). */
export type EventsConfig = Config['events'];
