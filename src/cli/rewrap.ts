import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { checkKeyring } from '../crypto/canary.js';
import { loadMigrations, migrate } from '../db/migrate.js';
import { createKeysRepository } from '../keys/repository.js';
import { createKeyService } from '../keys/service.js';
import { createLogger } from '../logger.js';
import { openDatabase, resolveKeys } from '../runtime.js';

/**
 * npm run rewrap -- [--batch-size 500]
 * Re-wraps every data key to the active kid (ENCRYPTION_KEYS / ENCRYPTION_ACTIVE_KID) while
 * the service keeps running. Safe to interrupt: run it again and it continues.
 * Progress goes to stderr, the final counts to stdout as JSON.
 */
const HELP = `Usage: npm run rewrap -- [--batch-size N]
Re-wraps every stored data key to the active key id, in batches; resumable.
  --batch-size  rows per batch, 1..5000 (default: 500)`;

try {
  const { values } = parseArgs({
    options: { 'batch-size': { type: 'string', default: '500' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const batchSize = Number(values['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
    throw new Error('--batch-size must be a whole number from 1 to 5000');
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'silent' ? 'silent' : 'warn', process.stderr as never);
  const { keyring } = await resolveKeys(config, log);
  const db = await openDatabase(config);
  try {
    await migrate(db, await loadMigrations());
    // The same check as the server: every kid in the ring must be the one the data was written with.
    await checkKeyring(db, keyring);
    const keys = createKeyService({ db, repo: createKeysRepository(), keyring, log });
    const result = await keys.rewrap({
      batchSize,
      onBatch: ({ batches, rewrapped }) => {
        process.stderr.write(`rewrap: batch ${batches}, ${rewrapped} rows moved to ${keyring.activeKid}\n`);
      },
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    if (result.remaining > 0) process.exitCode = 1;
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`rewrap: ${(err as Error).message}\n`);
  process.exit(2);
}
