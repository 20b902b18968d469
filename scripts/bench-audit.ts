import { randomBytes } from 'node:crypto';
import { AuditMaintenance } from '../src/audit/maintenance.js';
import { createAuditRepository } from '../src/audit/repository.js';
import { AuditSealer } from '../src/audit/sealer.js';
import { loadMigrations, migrate } from '../src/db/migrate.js';
import { openPostgres } from '../src/db/postgres.js';
import { createLogger } from '../src/logger.js';

/**
 * Audit storage at scale on PostgreSQL, in a scratch schema dropped at the end:
 *   1. bulk-insert ROWS synthetic rows (generate_series, chunks of 1M, spread over about
 *      ROWS x 10 ms of time, so over day partitions as 100 reads/s would),
 *   2. seal them all (what the background sealer does, from an empty chain),
 *   3. verify the whole chain (GET /api/audit/verify's work),
 *   4. with ROWS rows in place: group-commit-like inserts (64-row multi-row INSERTs, 4
 *      concurrent transactions, real transaction ids), then seal and verify those too.
 * Synthetic rows carry synthetic transaction ids (PER_XID rows per id, all below the
 * current one, so they are final), as group-committed batches would; the sealer and the
 * verifier cannot tell them apart.
 *
 *   npm run bench:audit -- [ROWS]        (TEST_DATABASE_URL or the local default)
 */
const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.argv[2] ?? 10_000_000);
const PER_XID = 1000;
const CHUNK = 1_000_000;
const HOT_TX = 400;
const HOT_ROWS = 64;

const schema = `bench_audit_${randomBytes(4).toString('hex')}`;
const admin = openPostgres({ connectionString: url, max: 1 });
await admin.query(`CREATE SCHEMA ${schema}`);
const db = openPostgres({ connectionString: url, schema, max: 6 });
const log = createLogger('warn');
const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const out: Record<string, unknown> = { rows: ROWS, perXid: PER_XID };
try {
  await migrate(db, await loadMigrations());
  const repo = createAuditRepository();
  const spanMs = ROWS * 10;
  // Partitions from the oldest row's day on, as the maintenance job would have made them.
  for (let d = Date.now() - spanMs; d <= Date.now() + 86_400_000; d += 86_400_000) {
    await new AuditMaintenance({
      db,
      repo,
      interval: 'day',
      retentionDays: 0,
      archiveDir: '/nonexistent',
      log,
      now: () => new Date(d),
    }).ensurePartitions();
  }

  // Enough finished transaction ids below the current one for the synthetic rows.
  const need = BigInt(Math.ceil(ROWS / PER_XID) + 10);
  for (;;) {
    const x = await admin.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x');
    if (BigInt(x[0]?.x ?? '0') > need) break;
    for (let i = 0; i < 500; i++) await admin.query('SELECT pg_current_xact_id()');
  }

  let t0 = process.hrtime.bigint();
  for (let a = 1; a <= ROWS; a += CHUNK) {
    const b = Math.min(ROWS, a + CHUNK - 1);
    await db.query(
      `INSERT INTO audit_log (at, actor, action, key, version, outcome, request_id, client_ip, xid)
       SELECT now() - (($1::bigint - g) * interval '10 milliseconds'),
              'access_key:' || (g % 50), 'secret.read', 'KEY_' || (g % 1000), 1 + g % 3, 'success',
              'req-' || g, '10.0.' || (g % 200) || '.' || (g % 250), (1 + g / $4::bigint)::text::xid8
       FROM generate_series($2::bigint, $3::bigint) g`,
      [ROWS, a, b, PER_XID],
    );
    process.stderr.write(`inserted ${b}\n`);
  }
  const insertS = secs(t0);
  out.bulkInsert = { seconds: +insertS.toFixed(1), rowsPerSecond: Math.round(ROWS / insertS) };
  await db.query('ANALYZE audit_log');
  const size = await db.query<{ mb: number }>(
    `SELECT round(sum(pg_total_relation_size(c.oid)) / 1048576.0)::int AS mb
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass`,
  );
  out.tableMB = size[0]?.mb;

  const sealer = new AuditSealer({ db, repo });
  t0 = process.hrtime.bigint();
  const sealed = await sealer.sealPending(true);
  const sealS = secs(t0);
  const seals = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_seals');
  out.seal = {
    rows: sealed,
    seals: seals[0]?.n,
    seconds: +sealS.toFixed(1),
    rowsPerSecond: Math.round(sealed / sealS),
  };
  process.stderr.write(`sealed ${sealed} in ${sealS.toFixed(1)} s\n`);

  t0 = process.hrtime.bigint();
  const v = await sealer.verify();
  const verifyS = secs(t0);
  out.verify = {
    intact: v.intact,
    checked: v.checked,
    seals: v.seals,
    seconds: +verifyS.toFixed(1),
    rowsPerSecond: Math.round(v.checked / verifyS),
  };
  process.stderr.write(`verified ${v.checked} in ${verifyS.toFixed(1)} s\n`);

  // Inserts as the service makes them (multi-row, one transaction each), on the full table.
  t0 = process.hrtime.bigint();
  let next = 0;
  const values = Array.from(
    { length: HOT_ROWS },
    (_, i) => `('admin:bench', 'secret.read', 'HOT_${i}', 1, 'success', 'hot-req', '127.0.0.1')`,
  ).join(', ');
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < HOT_TX) {
        next += 1;
        await db.query(
          `INSERT INTO audit_log (actor, action, key, version, outcome, request_id, client_ip) VALUES ${values}`,
        );
      }
    }),
  );
  const hotS = secs(t0);
  out.hotInsert = {
    transactions: HOT_TX,
    rowsPerTransaction: HOT_ROWS,
    seconds: +hotS.toFixed(2),
    rowsPerSecond: Math.round((HOT_TX * HOT_ROWS) / hotS),
    transactionsPerSecond: Math.round(HOT_TX / hotS),
  };
  t0 = process.hrtime.bigint();
  const sealedHot = await sealer.sealPending(true);
  out.sealHot = { rows: sealedHot, seconds: +secs(t0).toFixed(2) };
  // A second full walk only on small runs: at 10M it is the verify above again.
  if (ROWS <= 1_000_000) {
    const v2 = await sealer.verify();
    out.verifyAfterHot = { intact: v2.intact, checked: v2.checked };
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  await db.close();
  if (!process.env.BENCH_KEEP) await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.close();
}
