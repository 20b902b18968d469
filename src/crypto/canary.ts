import { IntegrityError, openValue, type SealedValue, sealValue } from './envelope.js';
import type { Keyring } from './keyring.js';

/**
 * One known plaintext per key id, sealed the first time that kid is seen. At start-up
 * every kid in the ring must open its canary, so a wrong ENCRYPTION_KEY stops the process
 * instead of failing reads one by one (or, worse, sealing new values under a wrong key).
 * Pure functions over sealed values: storing and reading the canaries is
 * src/kek/key-check.ts's job (through the KEK repository).
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

/** A fresh canary sealed under `kid` (which must be in the ring). */
export function sealCanary(keyring: Keyring, kid: string): SealedValue {
  return sealValue(
    { activeKid: kid, get: (k) => keyring.get(k), kids: () => keyring.kids() },
    identity(kid),
    CANARY_TEXT,
  );
}

/** Throws KeyCheckError unless the ring's key for the canary's kid opens it. */
export function verifyCanary(keyring: Keyring, stored: SealedValue): void {
  let ok = false;
  try {
    ok = openValue(keyring, identity(stored.kid), stored) === CANARY_TEXT;
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
  }
  if (!ok) {
    throw new KeyCheckError(
      `The encryption key for key id "${stored.kid}" is not the one this database was written with. ` +
        'Start with the original ENCRYPTION_KEY (or ENCRYPTION_KEYS entry); data cannot be read with another key.',
    );
  }
}

/** The refusal when stored values still use kids the ring lacks. */
export function missingKidsError(kids: string[]): KeyCheckError {
  return new KeyCheckError(
    `Stored values still use key id(s) ${kids.map((k) => `"${k}"`).join(', ')}, which the keyring lacks. ` +
      'Put them back into ENCRYPTION_KEYS and run the rewrap before removing a key.',
  );
}
