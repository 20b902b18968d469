import { loadConfig } from '../config.js';
import { loadMigrations, migrate } from '../db/migrate.js';
import { openDatabase } from '../runtime.js';

/** npm run migrate: applies pending migrations (the server also does so at start-up). */
try {
  const config = loadConfig();
  const db = await openDatabase(config, { role: 'migrate' });
  try {
    const { applied } = await migrate(db, await loadMigrations());
    process.stdout.write(
      applied.length ? `applied: ${applied.join(', ')}\n` : 'nothing to apply: the schema is up to date\n',
    );
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`migrate: ${(err as Error).message}\n`);
  process.exit(1);
}
