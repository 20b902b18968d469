import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { openRuntime, type Runtime } from '../src/runtime.js';

/**
 * Where one server under test keeps its data: its own PostgreSQL schema (created here,
 * dropped at the end) or its own PGlite directory under a temp dir. Each server gets its
 * own, seeded alike, so the ceiling's writes never touch the rows the service decrypts.
 */
export type Backend = 'postgres' | 'pglite';

export interface Storage {
  backend: Backend;
  /** The environment a server process needs to find this storage. */
  env: Record<string, string>;
  /** Opens it in this process (migrated, keyring checked) for seeding and inspection. */
  open(): Promise<Runtime>;
  drop(): Promise<void>;
}

export const BENCH_DATABASE_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

export async function postgresReachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function createStorage(
  backend: Backend,
  keys: { ENCRYPTION_KEY: string; JWT_SECRET: string },
): Promise<Storage> {
  // One identity sends every request: lift the per-identity read limit, which would otherwise
  // answer most of the load with 429 (the limit itself is measured by the rate-limit tests).
  const base = { NODE_ENV: 'production', LOG_LEVEL: 'info', READ_RATE_LIMIT: '100000000', ...keys };
  const silent = pino({ level: 'silent' });
  if (backend === 'postgres') {
    const schema = `bench_${randomBytes(5).toString('hex')}`;
    await admin(`CREATE SCHEMA ${schema}`);
    // search_path travels in the URL, so src/main.ts needs no bench-only option.
    const url = new URL(BENCH_DATABASE_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const env = { ...base, DATABASE_URL: url.toString(), DATA_DIR: tmpdir() };
    return {
      backend,
      env,
      open: () => openRuntime(loadConfig(env), silent),
      drop: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
    };
  }
  const dir = await mkdtemp(join(tmpdir(), 'bench-pglite-'));
  const env = { ...base, DATA_DIR: dir };
  return {
    backend,
    env,
    open: () => openRuntime(loadConfig(env), silent),
    drop: () => rm(dir, { recursive: true, force: true }),
  };
}
