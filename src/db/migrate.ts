import type { Database } from './database.js';

/**
 * The migrator itself is plain JavaScript in ./migrator.mjs (forward-only numbered SQL
 * files, one transaction under an advisory lock, checksums of applied files): the
 * install-time image of the embedded database (./pglite-image.mjs) is migrated by the
 * same code before anything is compiled. The build copies both into dist/db/; they find the
 * migrations two levels up from src/db (tsx) and dist/db (compiled) alike.
 */
export {
  loadMigrations,
  MIGRATIONS_DIR,
  type Migration,
  migrate,
  migrationPrefixKeys,
} from './migrator.mjs';

/** True when every known migration is applied (for /ready). */
export async function migrationsApplied(db: Database, expected: number): Promise<boolean> {
  const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
  return (rows[0]?.n ?? 0) >= expected;
}
