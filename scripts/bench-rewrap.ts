import { randomBytes, randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import pg from 'pg';
import { buildApp } from '../src/app.js';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { sealValue } from '../src/crypto/envelope.js';
import { parseKeyring } from '../src/crypto/keyring.js';
import type { Database } from '../src/db/database.js';
import { loadMigrations, migrate } from '../src/db/migrate.js';
import { openPglite } from '../src/db/pglite.js';
import { openPostgres } from '../src/db/postgres.js';
import { checkKeyring } from '../src/kek/key-check.js';
import { KekRepository } from '../src/kek/repository.js';
import { KekService } from '../src/kek/service.js';
import { createLogger } from '../src/logger.js';

/**
 * Rewrap throughput under load: seeds ROWS versions under kid A, then re-wraps them to kid B
 * while READERS clients read random secrets and one client writes, all through the HTTP
 * layer. Prints rows/s and every failed or wrong read.
 *
 *   npx tsx scripts/bench-rewrap.ts pglite 20000
 *   npx tsx scripts/bench-rewrap.ts postgres 20000   (TEST_DATABASE_URL or the local default)
 * BENCH_WARMUP=2000 first runs the same load for 2 s without a rewrap, as a baseline.
 */
const backend = process.argv[2] === 'postgres' ? 'postgres' : 'pglite';
const ROWS = Number(process.argv[3] ?? 20_000);
const BATCH = Number(process.argv[4] ?? 500);
const READERS = 4;
const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const ka = randomBytes(32).toString('base64');
const kb = randomBytes(32).toString('base64');
const ringA = parseKeyring({ keys: `A:${ka}` });
const ringAB = parseKeyring({ keys: `A:${ka},B:${kb}` });
const schema = `bench_${randomBytes(4).toString('hex')}`;

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(sql);
  await c.end();
}

if (backend === 'postgres') await admin(`CREATE SCHEMA ${schema}`);
const db: Database =
  backend === 'postgres' ? openPostgres({ connectionString: url, schema }) : await openPglite(undefined);
try {
  await migrate(db, await loadMigrations());
  await checkKeyring(db, ringA);

  // Seed: one secret with one version per row, sealed under A, inserted 1000 at a time.
  const values = new Map<string, string>();
  const t0 = performance.now();
  for (let start = 0; start < ROWS; start += 1000) {
    const ids: string[] = [];
    const keys: string[] = [];
    const cols: string[][] = [[], [], [], [], [], []];
    for (let i = start; i < Math.min(ROWS, start + 1000); i++) {
      const id = randomUUID();
      const key = `BENCH_${i}`;
      const value = `bench-${randomBytes(16).toString('hex')}`;
      values.set(key, value);
      const s = sealValue(ringA, { secretId: id, key, version: 1 }, value);
      ids.push(id);
      keys.push(key);
      for (const [j, b] of [s.wrappedDek, s.dekIv, s.dekTag, s.iv, s.tag, s.ciphertext].entries())
        cols[j]!.push(b.toString('hex'));
    }
    await db.query(
      `WITH s AS (
         INSERT INTO secrets (id, key, current_version) SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[]) RETURNING id
       )
       INSERT INTO secret_versions (secret_id, version, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
       SELECT id, 1, 1, 'A', decode(w, 'hex'), decode(di, 'hex'), decode(dt, 'hex'), decode(iv, 'hex'), decode(tg, 'hex'), decode(ct, 'hex')
       FROM unnest($1::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) AS u(id, w, di, dt, iv, tg, ct)`,
      [ids, keys, ids.map(() => 1), ...cols],
    );
  }
  process.stdout.write(`${backend}: seeded ${ROWS} rows in ${Math.round(performance.now() - t0)} ms\n`);

  await checkKeyring(db, ringAB);
  const config = loadConfig({ NODE_ENV: 'test' });
  const jwtSecret = randomBytes(48).toString('base64');
  const app = await buildApp({
    config,
    db,
    keyring: ringAB,
    jwtSecret,
    logger: createLogger('silent'),
    migrationCount: 2,
  });
  await app.ready();
  const authorization = `Bearer ${mintAdminToken(config, jwtSecret, { sub: 'bench', ttlSeconds: 3600 })}`;
  const keys = [...values.keys()];

  let done = false;
  let reads = 0;
  let writes = 0;
  const failures: string[] = [];
  const reader = async () => {
    while (!done) {
      const key = keys[Math.floor(Math.random() * keys.length)]!;
      const r = await app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers: { authorization } });
      if (r.statusCode !== 200 || r.json().value !== values.get(key))
        failures.push(`GET ${key} ${r.statusCode}`);
      reads++;
      await setImmediate(); // a client is another task: let timers and the server run
    }
  };
  const writer = async () => {
    while (!done) {
      const key = keys[Math.floor(Math.random() * keys.length)]!;
      const value = `bench-${randomBytes(16).toString('hex')}`;
      const r = await app.inject({
        method: 'PUT',
        url: `/api/secrets/${key}`,
        headers: { authorization },
        payload: { value },
      });
      if (r.statusCode !== 200) failures.push(`PUT ${key} ${r.statusCode}`);
      else values.set(key, value);
      writes++;
      await setImmediate();
    }
  };
  const load = [...Array.from({ length: READERS }, reader), writer()];
  const keysService = new KekService({
    db,
    repo: new KekRepository(),
    keyring: ringAB,
    log: createLogger('silent'),
  });
  if (process.env.BENCH_WARMUP) {
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, Number(process.env.BENCH_WARMUP)));
    process.stdout.write(
      `warmup: ${reads} reads + ${writes} writes in ${Math.round(performance.now() - w0)} ms\n`,
    );
  }
  const t1 = performance.now();
  const result = await keysService.rewrap({ batchSize: BATCH });
  const seconds = (performance.now() - t1) / 1000;
  done = true;
  await Promise.all(load);
  await app.close();
  process.stdout.write(
    `${backend}: rewrapped ${result.rewrapped} rows (batch ${BATCH}) in ${seconds.toFixed(2)} s = ${Math.round(result.rewrapped / seconds)} rows/s; ` +
      `remaining ${result.remaining}, failed ${result.failed}; concurrent ${reads} reads + ${writes} writes ` +
      `(${Math.round((reads + writes) / seconds)} req/s), ${failures.length} failed requests${failures.length ? `: ${failures.slice(0, 5).join(', ')}` : ''}\n`,
  );
} finally {
  await db.close();
  if (backend === 'postgres') await admin(`DROP SCHEMA ${schema} CASCADE`);
}
