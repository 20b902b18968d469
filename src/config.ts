import { z } from 'zod';

/**
 * One validated, frozen configuration object built from the environment.
 * Only the process entry (src/main.ts and the CLIs) calls loadConfig; everything else
 * receives the object, so tests build apps with whatever configuration they need.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);
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
    DATABASE_URL: optionalString,
    DATABASE_POOL_MAX: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(1000).default(20)),
    DATABASE_CONNECT_TIMEOUT_MS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    ),
    DATA_DIR: z.preprocess(emptyAsUndefined, z.string().default('./data')),
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
    TRUST_PROXY: z.preprocess(emptyAsUndefined, bool.default(false)),
    READ_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(600)),
    AUTH_FAILURE_RATE_LIMIT: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).default(20)),
    REDIS_URL: optionalString,
    RATE_LIMIT_NAMESPACE: z.preprocess(emptyAsUndefined, z.string().min(1).default('secrets-rl:')),
    AUDIT_SEAL_INTERVAL_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(0).default(1000)),
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
    if (env.JWT_ALGORITHM && env.JWT_ALGORITHM !== 'HS256' && !env.JWT_PUBLIC_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_PUBLIC_KEY'],
        message: `is required when JWT_ALGORITHM is ${env.JWT_ALGORITHM}`,
      });
    }
  });

export type Env = z.output<typeof envSchema>;

export interface Config {
  readonly nodeEnv: Env['NODE_ENV'];
  readonly host: string;
  readonly port: number;
  readonly logLevel: Env['LOG_LEVEL'];
  readonly databaseUrl: string | undefined;
  readonly databasePoolMax: number;
  /** How long start-up retries the first PostgreSQL connection (0: try once). */
  readonly databaseConnectTimeoutMs: number;
  readonly dataDir: string;
  readonly encryption: {
    readonly key: string | undefined;
    readonly keys: string | undefined;
    readonly activeKid: string | undefined;
  };
  readonly jwt: {
    readonly secret: string | undefined;
    readonly publicKey: string | undefined;
    readonly algorithm: 'HS256' | 'RS256' | 'ES256' | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly adminRole: string;
  };
  readonly rootAdmin: { readonly username: string; readonly password: string } | undefined;
  readonly maxValueBytes: number;
  /** How many versions of each secret are kept; older ones are pruned when a version is added. */
  readonly maxVersions: number;
  readonly loginRateLimit: number;
  readonly trustProxy: boolean;
  /** Value reads per identity per minute. */
  readonly readRateLimit: number;
  /** Failed authentications per client IP per minute. */
  readonly authFailureRateLimit: number;
  /** Rate-limit counters live here when set, shared by every instance. */
  readonly redisUrl: string | undefined;
  readonly rateLimitNamespace: string;
  /** How often the audit sealer runs; 0 seals only before /api/audit/verify. */
  readonly auditSealIntervalMs: number;
}

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
  const e = parsed.data;
  return deepFreeze({
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    dataDir: e.DATA_DIR,
    encryption: { key: e.ENCRYPTION_KEY, keys: e.ENCRYPTION_KEYS, activeKid: e.ENCRYPTION_ACTIVE_KID },
    jwt: {
      secret: e.JWT_SECRET,
      publicKey: e.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n'),
      algorithm: e.JWT_ALGORITHM,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      adminRole: e.ADMIN_ROLE,
    },
    rootAdmin:
      e.ROOT_ADMIN_USERNAME !== undefined && e.ROOT_ADMIN_PASSWORD !== undefined
        ? { username: e.ROOT_ADMIN_USERNAME, password: e.ROOT_ADMIN_PASSWORD }
        : undefined,
    maxValueBytes: e.MAX_VALUE_BYTES,
    maxVersions: e.MAX_VERSIONS,
    loginRateLimit: e.LOGIN_RATE_LIMIT,
    trustProxy: e.TRUST_PROXY,
    readRateLimit: e.READ_RATE_LIMIT,
    authFailureRateLimit: e.AUTH_FAILURE_RATE_LIMIT,
    redisUrl: e.REDIS_URL,
    rateLimitNamespace: e.RATE_LIMIT_NAMESPACE,
    auditSealIntervalMs: e.AUDIT_SEAL_INTERVAL_MS,
  });
}
