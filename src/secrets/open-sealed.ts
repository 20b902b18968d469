import type { Logger } from 'pino';
import { IntegrityError, openValue, type ValueIdentity } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import { type CryptoColumns, toSealed } from '../db/sealed-columns.js';
import { errors } from '../errors.js';

/**
 * Opens one stored version, failing closed: a value that does not authenticate is logged
 * (key, version and kid; never the value) and refused with DECRYPTION_FAILED. Shared by
 * the single reads and the bulk reads (export, render).
 */
export function openSealed(keyring: Keyring, log: Logger, id: ValueIdentity, sealed: CryptoColumns): string {
  try {
    return openValue(keyring, id, toSealed(sealed));
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    log.error(
      { secretKey: id.key, version: id.version, kid: sealed.kid, reason: err.message },
      'stored secret failed its integrity check',
    );
    throw errors.integrity(id.key);
  }
}
