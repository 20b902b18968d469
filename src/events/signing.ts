import { createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/): the secret is
 * `whsec_` + base64 of its bytes; a signature is `v1,` + base64(HMAC-SHA256(secret bytes,
 * `${id}.${timestamp}.${body}`)); the header lists several, space-separated (rotation).
 * A few lines of node:crypto, as the spec's reference code does: the `standardwebhooks`
 * package verifies them in the tests, exactly as a receiver would.
 */

export const SECRET_PREFIX = 'whsec_';

export function newSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** A secret's HMAC key, decoded once (the dispatcher keeps them while the secrets stay the same). */
export function signingKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64'));
}

/**
 * `body` may be the request's bytes (the dispatcher signs the Buffer it sends): the signed
 * content is the same, `${id}.${timestamp}.` and then the body's UTF-8 bytes.
 */
export function signature(
  secret: string | KeyObject,
  id: string,
  timestamp: number,
  body: string | Buffer,
): string {
  const key = typeof secret === 'string' ? signingKey(secret) : secret;
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64')}`;
}

/** The webhook-signature header for every secret that currently signs (newest first). */
export function signatureHeader(
  secrets: readonly (string | KeyObject)[],
  id: string,
  timestamp: number,
  body: string | Buffer,
): string {
  return secrets.map((s) => signature(s, id, timestamp, body)).join(' ');
}
