// The schema migrator, in plain JavaScript: the service uses it through src/db/migrate.ts,
// and `npm ci`'s postinstall (scripts/pglite-image.mjs, through src/db/pglite-image.mjs) uses the very same code to build
// the embedded database's migrated start-up image before anything is compiled and in
// production installs without the TypeScript tools. One runner, so the bookkeeping a
// database started from the image carries is exactly what the service's migrator writes.
//
// Forward-only, numbered plain-SQL migrations, applied in one transaction under a
// transaction-scoped advisory lock, so several instances booting at once apply each file
// exactly once and the losers simply wait and find nothing to do.
//
// Written here rather than taken from node-pg-migrate or postgres-migrations because both
// drive a pg client or a connection URL, and the embedded backend is PGlite, which has
// neither; this runner speaks only the transaction interface both backends share (about 60
// lines). Checksums catch an applied file that was edited afterwards.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
const LOCK_ID = 7130_0001; // arbitrary, fixed: the advisory lock every instance agrees on

export async function loadMigrations(dir = MIGRATIONS_DIR) {
  const files = (await readdir(dir)).filter((f) => /^\d{3,}_[\w-]+\.sql$/.test(f)).sort();
  const out = [];
  for (const file of files) {
    const sql = await readFile(`${dir}/${file}`, 'utf8');
    out.push({
      version: Number.parseInt(file, 10),
      name: file,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  const versions = new Set(out.map((m) => m.version));
  if (versions.size !== out.length) throw new Error(`two migration files share a number in ${dir}`);
  return out;
}

/**
 * A key for each prefix of `migrations` (index k: the first k files, names and texts):
 * what an image of a database migrated that far is stored under. A changed or renamed file
 * changes the key of every prefix that holds it.
 */
export function migrationPrefixKeys(migrations) {
  const hash = createHash('sha256');
  const keys = [hash.copy().digest('hex').slice(0, 16)];
  for (const m of migrations) {
    hash.update(`${m.name}\0${m.sql}\0`);
    keys.push(hash.copy().digest('hex').slice(0, 16));
  }
  return keys;
}

export async function migrate(db, migrations, onPending) {
  const all = migrations ?? (await loadMigrations());
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const rows = await tx.query('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
    const done = new Map(rows.map((r) => [r.version, r]));
    for (const r of rows) {
      const m = all.find((x) => x.version === r.version);
      if (!m)
        throw new Error(
          `the database has migration ${r.name}, which this build does not know: is it older than the data?`,
        );
      if (m.checksum !== r.checksum) throw new Error(`migration ${r.name} was changed after it was applied`);
    }
    const pending = all.filter((m) => !done.has(m.version));
    if (pending.length > 0) onPending?.(pending.map((m) => m.name));
    const applied = [];
    for (const m of all) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      applied.push(m.name);
    }
    return { applied };
  });
}
