import { createAuditMaintenance } from '../audit/maintenance.js';
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
    const { applied } = await migrate(db, await loadMigrations());
    process.stdout.write(
      applied.length ? `applied: ${applied.join(', ')}\n` : 'nothing to apply: the schema is up to date\n',
    );
    // The audit partitions ahead of time, as the server's maintenance job makes them.
    const created = await createAuditMaintenance(db, createAuditRepository(), {
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
