import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Keyring } from './keyring.js';

/**
 * Envelope encryption as pure functions over Buffers.
 *
 * Every stored value gets a fresh 256-bit data key (DEK). The value is sealed with the DEK
 * (AES-256-GCM, 12-byte random IV, 16-byte tag); the DEK is sealed with the key-encryption
 * key named by `kid`. Both seals carry additional authenticated data naming the value's
 * identity (secret id, key, version; and the kid for the DEK), so ciphertext copied to
 * another secret, another version or another kid does not authenticate.
 */

export const FORMAT_VERSION = 1;
const ALG = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface ValueIdentity {
  readonly secretId: string;
  readonly key: string;
  readonly version: number;
}

export interface SealedValue {
  readonly format: number;
  readonly kid: string;
  readonly wrappedDek: Buffer;
  readonly dekIv: Buffer;
  readonly dekTag: Buffer;
  readonly iv: Buffer;
  readonly tag: Buffer;
  readonly ciphertext: Buffer;
}

/** Raised when stored data does not authenticate. Never carries plaintext. */
export class IntegrityError extends Error {
  override name = 'IntegrityError';
}

// JSON arrays give an unambiguous encoding of the identity (no separator can be smuggled in a field).
const valueAad = (id: ValueIdentity) =>
  Buffer.from(JSON.stringify(['secrets/value', FORMAT_VERSION, id.secretId, id.key, id.version]));
const dekAad = (id: ValueIdentity, kid: string) =>
  Buffer.from(JSON.stringify(['secrets/dek', FORMAT_VERSION, id.secretId, id.key, id.version, kid]));

function seal(key: Buffer, plaintext: Buffer, aad: Buffer) {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALG, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, tag: cipher.getAuthTag(), ciphertext };
}

function open(key: Buffer, iv: Buffer, tag: Buffer, ciphertext: Buffer, aad: Buffer): Buffer {
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new IntegrityError('malformed IV or tag');
  try {
    const decipher = createDecipheriv(ALG, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new IntegrityError('authentication failed');
  }
}

export function wrapDataKey(keyring: Keyring, identity: ValueIdentity, dek: Buffer, kid = keyring.activeKid) {
  const kek = keyring.get(kid);
  if (!kek) throw new IntegrityError(`unknown key id ${kid}`);
  const s = seal(kek, dek, dekAad(identity, kid));
  return { kid, wrappedDek: s.ciphertext, dekIv: s.iv, dekTag: s.tag };
}

export function unwrapDataKey(keyring: Keyring, identity: ValueIdentity, sealed: SealedValue): Buffer {
  if (sealed.format !== FORMAT_VERSION) throw new IntegrityError(`unknown format ${sealed.format}`);
  const kek = keyring.get(sealed.kid);
  if (!kek) throw new IntegrityError(`key id ${sealed.kid} is not in the keyring`);
  const dek = open(kek, sealed.dekIv, sealed.dekTag, sealed.wrappedDek, dekAad(identity, sealed.kid));
  if (dek.length !== 32) throw new IntegrityError('data key has the wrong length');
  return dek;
}

export function sealValue(keyring: Keyring, identity: ValueIdentity, plaintext: string): SealedValue {
  const dek = randomBytes(32);
  try {
    const v = seal(dek, Buffer.from(plaintext, 'utf8'), valueAad(identity));
    return {
      format: FORMAT_VERSION,
      ...wrapDataKey(keyring, identity, dek),
      iv: v.iv,
      tag: v.tag,
      ciphertext: v.ciphertext,
    };
  } finally {
    dek.fill(0);
  }
}

export function openValue(keyring: Keyring, identity: ValueIdentity, sealed: SealedValue): string {
  const dek = unwrapDataKey(keyring, identity, sealed);
  try {
    return open(dek, sealed.iv, sealed.tag, sealed.ciphertext, valueAad(identity)).toString('utf8');
  } finally {
    dek.fill(0);
  }
}

/** Re-wraps the data key under another kid without touching the value's ciphertext. */
export function rewrapValue(
  keyring: Keyring,
  identity: ValueIdentity,
  sealed: SealedValue,
  kid = keyring.activeKid,
): SealedValue {
  const dek = unwrapDataKey(keyring, identity, sealed);
  try {
    return { ...sealed, ...wrapDataKey(keyring, identity, dek, kid) };
  } finally {
    dek.fill(0);
  }
}
