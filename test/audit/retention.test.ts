import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyArchiveDir } from '../../src/audit/archive.js';
import { AuditMaintenance, partitionFor } from '../../src/audit/maintenance.js';
import { createAuditRepository } from '../../src/audit/repository.js';
import type { Database } from '../../src/db/database.js';
import { loadMigrations, migrate } from '../../src/db/migrate.js';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createLogger } from '../../src/logger.js';
import {
  backend,
  createTestApp,
  dropSchema,
  newSchema,
  type TestApp,
  testDatabaseUrl,
} from '../helpers/app.js';
import { distEntry } from '../helpers/cli.js';
import { secretValue } from '../helpers/secrets.js';

let t: TestApp;
let archiveRoot: string;
beforeAll(async () => {
  t = await createTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
});
afterAll(async () => t?.close());
beforeEach(async () => {
  await t.reset();
  // Partitions of earlier days left by another test go, so each test starts from today's.
  const today = partitionFor(new Date(), 'day').name;
  for (const name of await partitions()) {
    if (/^audit_log_d\d{8}$/.test(name) && name < today) {
      await t.db.query(`ALTER TABLE audit_log DETACH PARTITION ${name}`);
      await t.db.query(`DROP TABLE ${name}`);
    }
  }
  archiveRoot = mkdtempSync(join(tmpdir(), 'audit-archive-'));
  return () => rmSync(archiveRoot, { recursive: true, force: true });
});

const log = createLogger('silent');
const maintenance = (retentionDays: number) =>
  new AuditMaintenance({
    db: t.db,
    repo: createAuditRepository(),
    interval: 'day',
    retentionDays,
    archiveDir: archiveRoot,
    log,
  });

const verify = async () => {
  const r = await t.app.inject({ method: 'GET', url: '/api/audit/verify', headers: t.auth() });
  expect(r.statusCode).toBe(200);
  return r.json();
};

const partitions = async () =>
  (
    await t.db.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1`,
    )
  ).map((r) => r.name);

const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000);

async function readSome(n: number) {
  const r = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'AUD_RET', value: secretValue() },
  });
  expect(r.statusCode).toBe(201);
  for (let i = 0; i < n; i++)
    await t.app.inject({ method: 'GET', url: '/api/secrets/AUD_RET', headers: t.auth() });
}

/** Rows written 40 and 39 days ago (as a service running back then would have left them). */
async function agedRows() {
  for (const [days, n] of [
    [40, 3],
    [39, 2],
  ] as const) {
    await t.db.query(
      `INSERT INTO audit_log (actor, action, key, outcome, at)
       SELECT 'admin:old', 'secret.read', 'AUD_OLD', 'success', $1::timestamptz + make_interval(secs => g)
       FROM generate_series(1, $2::int) g`,
      [partitionFor(daysAgo(days), 'day').lo.toISOString(), n],
    );
  }
}

describe('partitions', () => {
  it('are created ahead at start-up, and rows land in their day', async () => {
    const today = partitionFor(new Date(), 'day');
    const names = await partitions();
    expect(names).toEqual(expect.arrayContaining(['audit_log_default', today.name]));
    expect(names.filter((n) => n.startsWith('audit_log_d')).length).toBeGreaterThanOrEqual(3);
    await readSome(1);
    const where = await t.db.query<{ p: string }>(
      'SELECT DISTINCT tableoid::regclass::text AS p FROM audit_log',
    );
    expect(where.map((w) => w.p.replace(/^.*\./, ''))).toEqual([today.name]);
  });

  it("move rows out of the default partition when their day's partition is created, without breaking the chain", async () => {
    await readSome(2);
    await agedRows();
    const before = await verify();
    expect(before).toMatchObject({ intact: true, checked: 8 });
    const inDefault = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log_default');
    expect(inDefault[0]?.n).toBe(5);
    const created = await maintenance(0).ensurePartitions();
    expect(created).toEqual([partitionFor(daysAgo(40), 'day').name, partitionFor(daysAgo(39), 'day').name]);
    const after = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log_default');
    expect(after[0]?.n).toBe(0);
    expect(await verify()).toMatchObject({ intact: true, checked: 8 });
  });
});

describe('retention', () => {
  it('archives sealed partitions past the retention, verifies from the anchor, and the archive on its own', async () => {
    await agedRows();
    await maintenance(0).ensurePartitions();
    // Not sealed yet: nothing is archived.
    expect(await maintenance(30).archiveExpired()).toEqual([]);
    await readSome(2);
    expect(await verify()).toMatchObject({ intact: true, checked: 8 });
    const old = [partitionFor(daysAgo(40), 'day').name, partitionFor(daysAgo(39), 'day').name];

    // Seen from a day when only the older day is past the retention.
    const m = new AuditMaintenance({
      db: t.db,
      repo: createAuditRepository(),
      interval: 'day',
      retentionDays: 30,
      archiveDir: archiveRoot,
      log,
      now: () => new Date(partitionFor(daysAgo(39), 'day').hi.getTime() + 30 * 86_400_000 - 1000),
    });
    const first = await m.archiveExpired();
    expect(first.map((u) => u.partitions)).toEqual([[old[0]]]);
    expect(first[0]?.rows).toBe(3);
    const second = await maintenance(30).archiveExpired();
    expect(second.map((u) => u.partitions)).toEqual([[old[1]]]);
    expect(await partitions()).not.toEqual(expect.arrayContaining([old[0]]));
    expect(await partitions()).not.toEqual(expect.arrayContaining([old[1]]));
    const left = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
    expect(left[0]?.n).toBe(3);

    const v = await verify();
    expect(v).toMatchObject({ intact: true, checked: 3 });
    expect(Number(v.anchorSeal)).toBeGreaterThan(0);
    await t.app.inject({ method: 'GET', url: '/api/secrets/AUD_RET', headers: t.auth() });
    expect(await verify()).toMatchObject({ intact: true, checked: 4, anchorSeal: v.anchorSeal });

    const offline = await verifyArchiveDir(archiveRoot);
    expect(offline.map((r) => [r.intact, r.rows])).toEqual([
      [true, 3],
      [true, 2],
    ]);

    // A row claiming an archived transaction is named.
    const anchor = await t.db.query<{ x: string }>('SELECT xid_from::text AS x FROM audit_anchor');
    await t.db.query(
      `INSERT INTO audit_log (id, actor, action, outcome, xid) VALUES (999999, 'admin:mallory', 'secret.read', 'success', $1::xid8)`,
      [anchor[0]?.x],
    );
    expect(await verify()).toMatchObject({ intact: false, firstBrokenId: '999999' });
  });

  it('archives two days together when a later seal holds an older row than an earlier seal', async () => {
    const old = [partitionFor(daysAgo(40), 'day'), partitionFor(daysAgo(39), 'day')];
    const at = (p: { lo: Date }) => new Date(p.lo.getTime() + 3_600_000).toISOString();
    await t.db.query(
      `INSERT INTO audit_log (actor, action, outcome, at) VALUES ('admin:a', 'secret.read', 'success', $1)`,
      [at(old[1] as { lo: Date })],
    );
    await maintenance(0).ensurePartitions();
    await verify();
    // A row of the older day committing after the newer day's row was sealed.
    await t.db.query(
      `INSERT INTO audit_log (actor, action, outcome, at) VALUES ('admin:b', 'secret.read', 'success', $1)`,
      [at(old[0] as { lo: Date })],
    );
    await maintenance(0).ensurePartitions();
    expect(await verify()).toMatchObject({ intact: true, checked: 2, seals: 2 });
    const units = await maintenance(30).archiveExpired();
    expect(units.map((u) => u.partitions)).toEqual([old.map((p) => p.name)]);
    expect(units[0]).toMatchObject({ rows: 2, seals: 2 });
    expect(await verify()).toMatchObject({ intact: true, checked: 0, anchorSeal: '2' });
    expect((await verifyArchiveDir(archiveRoot)).map((r) => r.intact)).toEqual([true]);
  });

  it('the offline verifier names an edited, removed or inserted archive line, and a removed seal', async () => {
    await agedRows();
    await maintenance(0).ensurePartitions();
    await verify();
    const units = await maintenance(30).archiveExpired();
    expect(units.map((u) => u.partitions.length)).toEqual([1, 1]);
    const dir = units[0]?.dir as string;
    const rowsFile = join(dir, 'rows.jsonl');
    const original = readFileSync(rowsFile, 'utf8');
    const lines = original.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect((await verifyArchiveDir(dir))[0]).toMatchObject({ intact: true, rows: 3, seals: 1 });

    const offline = (d: string) =>
      promisify(execFile)(process.execPath, [distEntry('cli/audit-verify-archive'), d]).then(
        (r) => ({ code: 0, stdout: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
      );
    expect(await offline(archiveRoot)).toMatchObject({ code: 0 });

    const edited = lines.map((l, i) => (i === 2 ? l.replace('admin:old', 'admin:eve') : l));
    writeFileSync(rowsFile, `${edited.join('\n')}\n`);
    const id2 = JSON.parse(lines[2] as string).id;
    expect((await verifyArchiveDir(dir))[0]).toMatchObject({ intact: false, firstBrokenId: id2 });
    const cliRun = await offline(archiveRoot);
    expect(cliRun.code).toBe(1);
    expect(cliRun.stdout).toContain(`"firstBrokenId":"${id2}"`);

    writeFileSync(rowsFile, `${lines.filter((_, i) => i !== 1).join('\n')}\n`);
    expect((await verifyArchiveDir(dir))[0]).toMatchObject({
      intact: false,
      firstBrokenId: JSON.parse(lines[2] as string).id,
    });

    const forged = { ...JSON.parse(lines[0] as string), id: '424242', actor: 'admin:eve' };
    writeFileSync(rowsFile, `${original}${JSON.stringify(forged)}\n`);
    expect((await verifyArchiveDir(dir))[0]).toMatchObject({ intact: false, firstBrokenId: '424242' });

    writeFileSync(rowsFile, original);
    const sealsFile = join(dir, 'seals.jsonl');
    const seals = readFileSync(sealsFile, 'utf8').trimEnd().split('\n');
    writeFileSync(sealsFile, `${seals.slice(0, -1).join('\n')}\n`);
    expect((await verifyArchiveDir(dir))[0]?.intact).toBe(false);
    writeFileSync(sealsFile, `${seals.join('\n')}\n`);
    expect((await verifyArchiveDir(archiveRoot)).map((r) => r.intact)).toEqual([true, true]);
    expect(readdirSync(archiveRoot)).toHaveLength(2);
  });
});

describe('migration 004', () => {
  it('applies on a database with migrations 001-003 and audit rows, carrying them over', async () => {
    const all = await loadMigrations();
    let db: Database;
    let schema: string | undefined;
    if (backend === 'postgres') {
      schema = await newSchema();
      db = openPostgres({ connectionString: testDatabaseUrl, schema, max: 2 });
    } else db = await openPglite(undefined);
    try {
      await migrate(
        db,
        all.filter((m) => m.version <= 3),
      );
      await db.query(
        `INSERT INTO audit_log (actor, action, key, outcome, at)
         SELECT 'admin:v3', 'secret.read', 'K' || g, 'success', now() - make_interval(days => g)
         FROM generate_series(1, 4) g`,
      );
      await db.query(
        `UPDATE audit_log SET seal_seq = id, hash = decode(repeat('11', 32), 'hex') WHERE id <= 2`,
      );
      const { applied } = await migrate(db, all);
      expect(applied).toContain('004_audit_seals.sql');
      const rows = await db.query<{ id: string; key: string }>(
        'SELECT id::text AS id, key FROM audit_log ORDER BY id',
      );
      expect(rows.map((r) => r.key)).toEqual(['K1', 'K2', 'K3', 'K4']);
      await db.query(
        `INSERT INTO audit_log (actor, action, outcome) VALUES ('admin:v4', 'secret.read', 'success')`,
      );
      const next = await db.query<{ id: string }>(
        `SELECT id::text AS id FROM audit_log WHERE actor = 'admin:v4'`,
      );
      expect(next[0]?.id).toBe('5');
      const { AuditSealer } = await import('../../src/audit/sealer.js');
      const v = await new AuditSealer({ db, repo: createAuditRepository() }).verify();
      expect(v).toMatchObject({ intact: true, checked: 5 });
    } finally {
      await db.close();
      if (schema) await dropSchema(schema);
    }
  });
});
