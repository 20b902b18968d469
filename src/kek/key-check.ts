import { missingKidsError, sealCanary, verifyCanary } from '../crypto/canary.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { toSealed } from '../db/sealed-columns.js';
import { KekRepository } from './repository.js';

/**
 * The start-up key check (the server, the migrate-and-rewrap command): every kid in the
 * ring opens its stored canary (sealed on first sight), and no kid that stored values
 * still use is missing from the ring. Throws KeyCheckError (src/crypto/canary.ts).
 */
export async function checkKeyring(db: Database, keyring: Keyring): Promise<void> {
  const repo = new KekRepository();
  // Concurrent first starts: whoever inserts first wins, everyone verifies that row.
  for (const kid of keyring.kids()) await repo.insertCanary(db, sealCanary(keyring, kid));
  const canaries = await repo.canaries(db);
  for (const row of canaries) if (keyring.get(row.kid)) verifyCanary(keyring, toSealed(row));
  // A kid that stored values still use must stay in the ring, or those values are lost.
  // Every kid that ever sealed a value has a canary, so only those need checking (an index probe each).
  const missing: string[] = [];
  for (const row of canaries) {
    if (!keyring.get(row.kid) && (await repo.kidInUse(db, row.kid))) missing.push(row.kid);
  }
  if (missing.length > 0) throw missingKidsError(missing);
}
