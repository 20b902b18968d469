import { randomBytes } from 'node:crypto';

/**
 * A workload token (issued by the OIDC token exchange): `iw_` + 32 random bytes in hex, kept
 * like an access key (only its SHA-256, src/access-keys/token.ts), with a distinct prefix so
 * the guard knows which table holds it and a leaked one is recognisable.
 */
export const WORKLOAD_TOKEN_PATTERN = /^iw_[0-9a-f]{64}$/;

export function newWorkloadToken(): string {
  return `iw_${randomBytes(32).toString('hex')}`;
}
