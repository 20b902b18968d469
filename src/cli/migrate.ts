import { AuditMaintenance } from '../audit/maintenance.js';
import { createAuditRepository } from '../audit/repository.js';
import { loadConfig } from '../config.js';
import { loadMigrations, migrate } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { openDatabase } from '../runtime.js';

/** npm run migrate: applies pending migrations (the server also does so at start-up). */
try {
  const config = loadConfig();
  const db = await openDatabase(config, { role: 'migrate' });
  try {
    const migrations = await loadMigrations();
    const { applied } = await migrate(db, migrations);
    // An empty DATA_DIR was just made from the install-time image, which is migrated already.
    process.stdout.write(
      applied.length
        ? `applied: ${applied.join(', ')}\n`
        : `nothing to apply: the schema is up to date (${migrations.length} migrations, the newest ${migrations.at(-1)?.name})\n`,
    );
    // The audit partitions ahead of time, as the server's maintenance job makes them.
    const created = await new AuditMaintenance({
      db,
      repo: createAuditRepository(),
      interval: config.auditPartitionInterval,
      retentionDays: 0,
      archiveDir: config.auditArchiveDir,
      log: createLogger('warn'),
    }).ensurePartitions();
    if (created.length) process.stdout.write(`audit partitions created: ${created.join(', ')}\n`);
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`migrate: ${(err as Error).message}\n`);
  process.exit(1);
}
