import { createHash, randomBytes } from 'node:crypto';

/** `ik_` + 32 random bytes in hex, as InsForge's keys look. */
export const TOKEN_PATTERN = /^ik_[0-9a-f]{64}$/;

export function newToken(): string {
  return `ik_${randomBytes(32).toString('hex')}`;
}

/**
 * Only this digest is stored. The token carries 256 random bits, so a fast unsalted hash
 * is enough (no dictionary to attack), and looking the digest up by index compares
 * digests, never the token, so response timing says nothing about the token.
 */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The non-secret part shown in listings: `ik_` + 8 hex characters (32 of 256 bits). */
export function tokenPrefix(token: string): string {
  return token.slice(0, 11);
}
