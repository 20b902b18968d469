import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.js';

/**
 * Forward-only, numbered plain-SQL migrations, applied in one transaction under a
 * transaction-scoped advisory lock, so several instances booting at once apply each file
 * exactly once and the losers simply wait and find nothing to do.
 *
 * Written here rather than taken from node-pg-migrate or postgres-migrations because both
 * drive a pg client or a connection URL, and the embedded backend is PGlite, which has
 * neither; this runner speaks only the Database interface both backends share (about 60
 * lines). Checksums catch an applied file that was edited afterwards.
 */

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));
const LOCK_ID = 7130_0001; // arbitrary, fixed: the advisory lock every instance agrees on

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{3,}_[\w-]+\.sql$/.test(f)).sort();
  const out: Migration[] = [];
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

export async function migrate(
  db: Database,
  migrations?: Migration[],
  /** Called once, before the first pending file runs (start-up's progress line). */
  onPending?: (names: string[]) => void,
): Promise<{ applied: string[] }> {
  const all = migrations ?? (await loadMigrations());
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const rows = await tx.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
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
    const applied: string[] = [];
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

/** True when every known migration is applied (for /ready). */
export async function migrationsApplied(db: Database, expected: number): Promise<boolean> {
  const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
  return (rows[0]?.n ?? 0) >= expected;
}
