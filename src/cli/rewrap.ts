import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { loadMigrations, migrate } from '../db/migrate.js';
import { systemCaller } from '../identity/caller.js';
import { checkKeyring } from '../kek/key-check.js';
import { KekRepository } from '../kek/repository.js';
import { KekService } from '../kek/service.js';
import { createLogger } from '../logger.js';
import { openDatabase, resolveKeys } from '../runtime.js';
import { createChanges } from '../secrets/changes.js';
import { createSecretsRepository } from '../secrets/repository.js';

/**
 * npm run rewrap -- [--batch-size 500] [--pause-ms 0]
 * Re-wraps every data key to the active kid (ENCRYPTION_KEYS / ENCRYPTION_ACTIVE_KID) while
 * the service keeps running. Safe to interrupt: run it again and it continues.
 * Progress goes to stderr, the final counts to stdout as JSON.
 */
const HELP = `Usage: npm run rewrap -- [--batch-size N] [--pause-ms MS]
Re-wraps every stored data key to the active key id, in batches; resumable.
  --batch-size  rows per batch, 1..5000 (default: 500)
  --pause-ms    sleep between batches, to leave a busy database room (default: 0)
With embedded PGlite (no DATABASE_URL) stop the server first, or use POST /api/keys/rewrap:
the data directory must not be opened by two processes.`;

try {
  const { values } = parseArgs({
    options: {
      'batch-size': { type: 'string', default: '500' },
      'pause-ms': { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const batchSize = Number(values['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
    throw new Error('--batch-size must be a whole number from 1 to 5000');
  }
  const pauseMs = Number(values['pause-ms']);
  if (!Number.isInteger(pauseMs) || pauseMs < 0 || pauseMs > 60_000) {
    throw new Error('--pause-ms must be a whole number from 0 to 60000');
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'silent' ? 'silent' : 'warn', process.stderr as never);
  const { keyring } = await resolveKeys(config, log);
  const db = await openDatabase(config, { role: 'rewrap' });
  try {
    await migrate(db, await loadMigrations());
    // The same check as the server: every kid in the ring must be the one the data was written with.
    await checkKeyring(db, keyring);
    const kek = new KekService({ db, repo: new KekRepository(), keyring, log });
    // The command line's rewrap is audited like the HTTP one, through the same door: a row
    // per secret per batch, with the actor system:rewrap-cli (no request: a generated id).
    const changes = createChanges({
      repo: createSecretsRepository(),
      keyring,
      maxValueBytes: config.maxValueBytes,
      maxVersions: config.maxVersions,
    });
    const caller = systemCaller('rewrap-cli', randomUUID());
    const result = await kek.rewrap({
      batchSize,
      record: changes.rotated(caller),
      onBatch: async ({ batches, rewrapped }) => {
        process.stderr.write(`rewrap: batch ${batches}, ${rewrapped} rows moved to ${keyring.activeKid}\n`);
        if (pauseMs > 0) await sleep(pauseMs);
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
