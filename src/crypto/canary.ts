import type { Database } from '../db/database.js';
import { IntegrityError, openValue, type SealedValue, sealValue } from './envelope.js';
import type { Keyring } from './keyring.js';

/**
 * One known plaintext per key id, sealed the first time that kid is seen. At start-up
 * every kid in the ring must open its canary, so a wrong ENCRYPTION_KEY stops the process
 * instead of failing reads one by one (or, worse, sealing new values under a wrong key).
 */

const CANARY_TEXT = 'secrets-service key canary v1';
const identity = (kid: string) => ({
  secretId: '00000000-0000-0000-0000-000000000000',
  key: `__CANARY_${kid}`,
  version: 1,
});

export class KeyCheckError extends Error {
  override name = 'KeyCheckError';
}

interface CanaryRow {
  kid: string;
  format: number;
  wrapped_dek: Buffer;
  dek_iv: Buffer;
  dek_tag: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

export async function checkKeyring(db: Database, keyring: Keyring): Promise<void> {
  for (const kid of keyring.kids()) {
    const sealed = sealValue(
      { activeKid: kid, get: (k) => keyring.get(k), kids: () => keyring.kids() },
      identity(kid),
      CANARY_TEXT,
    );
    // Concurrent first starts: whoever inserts first wins, everyone verifies that row.
    await db.query(
      `INSERT INTO crypto_canaries (kid, format, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kid) DO NOTHING`,
      [
        kid,
        sealed.format,
        sealed.wrappedDek,
        sealed.dekIv,
        sealed.dekTag,
        sealed.iv,
        sealed.tag,
        sealed.ciphertext,
      ],
    );
  }
  const rows = await db.query<CanaryRow>('SELECT * FROM crypto_canaries');
  for (const row of rows) {
    if (!keyring.get(row.kid)) continue;
    const stored: SealedValue = {
      format: row.format,
      kid: row.kid,
      wrappedDek: row.wrapped_dek,
      dekIv: row.dek_iv,
      dekTag: row.dek_tag,
      iv: row.iv,
      tag: row.tag,
      ciphertext: row.ciphertext,
    };
    let ok = false;
    try {
      ok = openValue(keyring, identity(row.kid), stored) === CANARY_TEXT;
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
    }
    if (!ok) {
      throw new KeyCheckError(
        `The encryption key for key id "${row.kid}" is not the one this database was written with. ` +
          'Start with the original ENCRYPTION_KEY (or ENCRYPTION_KEYS entry); data cannot be read with another key.',
      );
    }
  }
  // A kid that stored values still use must stay in the ring, or those values are lost.
  // Every kid that ever sealed a value has a canary, so only those need checking (an index probe each).
  const missing: string[] = [];
  for (const row of rows) {
    if (keyring.get(row.kid)) continue;
    const used = await db.query('SELECT 1 FROM secret_versions WHERE kid = $1 LIMIT 1', [row.kid]);
    if (used.length > 0) missing.push(row.kid);
  }
  if (missing.length > 0) {
    throw new KeyCheckError(
      `Stored values still use key id(s) ${missing.map((k) => `"${k}"`).join(', ')}, which the keyring lacks. ` +
        'Put them back into ENCRYPTION_KEYS and run the rewrap before removing a key.',
    );
  }
}
