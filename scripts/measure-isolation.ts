/**
 * Issue 21 findings 1 and 4, measured against a source tree, so that two trees (main's in a
 * scratch copy, and this one) can be compared side by side in one session:
 *
 *   npx tsx scripts/measure-isolation.ts <tree root> [postgres|pglite]
 *
 * Finding 1: 30 GET /api/secrets/%00 with a secrets:list key beside 120 admin reads.
 * Finding 4: 30 concurrent 1000-entry dry-run imports from one secrets:write key beside 6
 * admin reads. Prints the status counts. In process (app.inject), default configuration.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const root = process.argv[2]!;
const backend = process.argv[3] ?? 'postgres';
const url = 'postgres://postgres@127.0.0.1:5432/test';
const { loadConfig } = await import(`${root}/src/config.ts`);
const { openRuntime } = await import(`${root}/src/runtime.ts`);
const { buildApp } = await import(`${root}/src/app.ts`);
const { createLogger } = await import(`${root}/src/logger.ts`);
const { mintAdminToken } = await import(`${root}/src/auth/mint.ts`);

const schema = `m_${randomBytes(5).toString('hex')}`;
if (backend === 'postgres') {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  await c.end();
}
const env: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(48).toString('base64'),
  READ_RATE_LIMIT: '1000000',
  AUTH_FAILURE_RATE_LIMIT: '1000000',
  ...(process.env.BULK_IN_FLIGHT_PER_CALLER
    ? { BULK_IN_FLIGHT_PER_CALLER: process.env.BULK_IN_FLIGHT_PER_CALLER }
    : {}),
  ...(backend === 'postgres' ? { DATABASE_URL: url } : { DATA_DIR: `/tmp/i21-measure/${schema}` }),
};
const config = loadConfig(env);
const logger = createLogger('silent');
const runtime = await openRuntime(config, logger, backend === 'postgres' ? { pgSchema: schema } : {});
const app = await buildApp({ ...runtime, logger });
await app.ready();
const admin = (sub: string) => ({
  authorization: `Bearer ${mintAdminToken(config, runtime.jwtSecret, { sub, ttlSeconds: 3600 })}`,
});
const tally = (codes: number[]) => {
  const n = new Map<number, number>();
  for (const c of codes) n.set(c, (n.get(c) ?? 0) + 1);
  return [...n].map(([c, k]) => `${c}x${k}`).join(' ');
};

await app.inject({
  method: 'POST',
  url: '/api/secrets',
  headers: admin('a'),
  payload: { key: 'TARGET', value: 'v' },
});
const key = async (scopes: string[]) =>
  (
    await app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: admin('a'),
      payload: { name: `k${Math.random()}`, scopes },
    })
  ).json().token as string;

// Finding 1: 30 NUL requests (403 with a secrets:list key) beside 120 admin reads.
const lister = await key(['secrets:list']);
const hostile = Array.from({ length: 30 }, () =>
  app.inject({ method: 'GET', url: '/api/secrets/%00', headers: { 'x-api-key': lister } }),
);
const reads = Array.from({ length: 120 }, () =>
  app.inject({ method: 'GET', url: '/api/secrets/TARGET', headers: admin('bystander') }),
);
const [h1, r1] = await Promise.all([Promise.all(hostile), Promise.all(reads)]);
const rows = await runtime.db
  .query(`SELECT count(*)::int AS n FROM audit_log WHERE key LIKE '%u0000%' OR key = E'\\\\u0000'`)
  .catch(() => [{ n: '?' }]);
console.log(
  `${backend} finding 1: NUL requests ${tally(h1.map((r) => r.statusCode))}; admin reads ${tally(r1.map((r) => r.statusCode))}; refusal rows ${rows[0].n}`,
);

// Finding 4: 30 concurrent 1000-entry dry-run imports from one secrets:write key beside 6 admin reads.
const writer = await key(['secrets:write']);
const body = (i: number) => ({
  dryRun: true,
  secrets: Array.from({ length: 1000 }, (_, j) => ({ key: `B${i}_${j}`, value: 'x' })),
});
const t0 = performance.now();
const batches = Array.from({ length: 30 }, (_, i) =>
  app.inject({
    method: 'POST',
    url: '/api/secrets/batch',
    headers: { 'x-api-key': writer },
    payload: body(i),
  }),
);
const reads4 = Array.from({ length: 6 }, () =>
  app
    .inject({ method: 'GET', url: '/api/secrets/TARGET', headers: admin('bystander') })
    .then((r: { statusCode: number }) => ({ code: r.statusCode, ms: performance.now() - t0 })),
);
const [b4, r4] = await Promise.all([Promise.all(batches), Promise.all(reads4)]);
console.log(
  `${backend} finding 4: batches ${tally(b4.map((r) => r.statusCode))}; admin reads ${tally(r4.map((r) => r.code))}; slowest read ${Math.round(Math.max(...r4.map((r) => r.ms)))} ms`,
);
await app.close();
await runtime.close();
if (backend === 'postgres') {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`DROP SCHEMA ${schema} CASCADE`);
  await c.end();
}
