import type { SealedValue } from '../crypto/envelope.js';

/**
 * The one declaration of how a sealed value is stored: the crypto columns that
 * secret_versions and crypto_canaries share, their SQL list and the mapping to and from
 * `SealedValue`. Repositories use these; crypto itself stays free of SQL.
 */

export interface CryptoColumns {
  format: number;
  kid: string;
  wrapped_dek: Buffer;
  dek_iv: Buffer;
  dek_tag: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

const NAMES = ['format', 'kid', 'wrapped_dek', 'dek_iv', 'dek_tag', 'iv', 'tag', 'ciphertext'] as const;

/** The column list for SELECT and INSERT, optionally qualified by a table alias. */
export const cryptoColumns = (alias?: string) => NAMES.map((n) => (alias ? `${alias}.${n}` : n)).join(', ');

export const toSealed = (r: CryptoColumns): SealedValue => ({
  format: r.format,
  kid: r.kid,
  wrappedDek: r.wrapped_dek,
  dekIv: r.dek_iv,
  dekTag: r.dek_tag,
  iv: r.iv,
  tag: r.tag,
  ciphertext: r.ciphertext,
});

/** The parameters for `cryptoColumns()`, in its order. */
export const sealedParams = (s: SealedValue) => [
  s.format,
  s.kid,
  s.wrappedDek,
  s.dekIv,
  s.dekTag,
  s.iv,
  s.tag,
  s.ciphertext,
];
