import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Database } from '../../src/db/database.js';
import { loadMigrations, migrate } from '../../src/db/migrate.js';
import { openPglite, type PgliteLease } from '../../src/db/pglite.js';
import { copyPgliteImage, findPgliteImage } from '../../src/db/pglite-image.mjs';

/**
 * A migrated, empty PGlite data directory, dumped once per test run (by the global setup)
 * and loaded by every in-memory test app: a new PGlite otherwise runs initdb and every
 * migration in WebAssembly, several seconds per app on this machine, against well under a
 * second to load the dump. The dump holds the schema only; each app still runs migrate()
 * (which finds nothing to apply) and stores its own key canaries.
 */
/** A PGlite as migrate() sees it: migrate() needs only transaction(); the rest of Database is never called on this. */
export function migratable(pg: PGlite): Database {
  return {
    transaction: (fn) =>
      pg.transaction((tx) =>
        fn({
          query: async (q, p) => (await tx.query(q, p as unknown[])).rows as never,
          exec: async (q) => void (await tx.exec(q)),
        }),
      ),
  } as Pick<Database, 'transaction'> as Database;
}

export async function buildPgliteSnapshot(): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'secrets-pglite-snapshot-'));
  const file = join(dir, 'migrated.tar');
  const pg = new PGlite();
  try {
    await migrate(migratable(pg), await loadMigrations());
    const dump = await pg.dumpDataDir('none');
    await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  } finally {
    await pg.close();
  }
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}

let loaded: Promise<Blob> | undefined;
let migrations: Promise<Awaited<ReturnType<typeof loadMigrations>>> | undefined;

/** The run's snapshot as a Blob (read once per test file). */
export function pgliteSnapshot(file: string): Promise<Blob> {
  loaded ??= readFile(file).then((b) => new Blob([b]));
  return loaded;
}

/**
 * Gives an on-disk test app (DATA_DIR) a migrated database: when `<dataDir>/pglite` holds no
 * database yet, the install-time image (src/db/pglite-image.mjs, made by npm's postinstall and
 * `npm run build`) is copied into it, as the service itself does on an empty DATA_DIR: plain
 * file copies, about 0.2 s of CPU. Without an image of every current migration (installed
 * with --ignore-scripts, a migration edited since), the run's snapshot is loaded instead,
 * which boots a PGlite to unpack it through the WebAssembly file system (about 2 s of CPU,
 * several times that in wall time on a loaded machine). Either way the app's first start
 * skips initdb and the migrations and finds its schema current. A fresh DATA_DIR's own initdb
 * and migrations stay covered by the CLI's `migrate` test and the process suites, which start
 * from empty directories.
 */
export async function seedPgliteDir(dataDir: string, file: string): Promise<void> {
  const dir = join(dataDir, 'pglite');
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  migrations ??= loadMigrations();
  const all = await migrations;
  const image = await findPgliteImage(all).catch(() => undefined);
  if (image && image.migrations === all.length) {
    await copyPgliteImage(image.dir, dir);
    return;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pg = new PGlite({ dataDir: dir, loadDataDir: await pgliteSnapshot(file) });
  await pg.waitReady;
  await pg.close();
}

/** Leaves a database's `public` schema as initdb does (empty): the migrations create everything in it. */
const EMPTY_PUBLIC = ['DROP SCHEMA public CASCADE', 'CREATE SCHEMA public'];

/**
 * A PGlite database in `<dataDir>/pglite` whose schema is empty, as initdb leaves it, for a
 * test that builds an older service's database by running only the first migrations: seeded
 * like every test DATA_DIR (a copy of the migrated image), then `public` dropped and created
 * again, as the in-memory pool does between apps. initdb itself costs seconds of WebAssembly
 * CPU (15 s of wall time at load average 17 on two cores), the copy and the drop well under one.
 */
export async function openEmptyPgliteDir(dataDir: string, file: string): Promise<Database> {
  await seedPgliteDir(dataDir, file);
  const db = await openPglite(join(dataDir, 'pglite'));
  for (const sql of EMPTY_PUBLIC) await db.query(sql);
  return db;
}

/**
 * A per-worker pool of in-memory PGlite databases for the test apps. Starting a PGlite costs
 * about 1.2 s of CPU even from the snapshot, and a run starts well over a hundred; emptying
 * one and migrating it again costs under 0.1 s. A closed app's database comes back here: its
 * session is reset (DISCARD ALL), its schema dropped and migrated anew, which leaves exactly
 * the snapshot's state (the migrations create everything in `public`). A database that fails
 * the reset (left inside a transaction, closed) is closed and not reused.
 */
const idle: PGlite[] = [];
const MAX_IDLE = 2;

async function recycle(pg: PGlite): Promise<void> {
  try {
    if (pg.closed) return;
    await pg.query('DISCARD ALL');
    for (const sql of EMPTY_PUBLIC) await pg.exec(sql);
    migrations ??= loadMigrations();
    await migrate(migratable(pg), await migrations);
    if (idle.length < MAX_IDLE) idle.push(pg);
    else await pg.close();
  } catch {
    await pg.close().catch(() => {});
  }
}

export async function leasePglite(file: string): Promise<PgliteLease> {
  const instance = idle.pop() ?? new PGlite({ loadDataDir: await pgliteSnapshot(file) });
  // openPglite calls release once, on the app's close.
  return { instance, release: () => void recycle(instance) };
}
