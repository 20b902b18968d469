import { createSigner } from 'fast-jwt';
import { type Config, parseDuration } from '../config.js';

/** Mints an admin JWT with the service's own HS256 secret (for operators and tests). */
export function mintAdminToken(
  config: Config,
  jwtSecret: string,
  opts: { sub: string; ttlSeconds: number; role?: string; extra?: Record<string, unknown> },
): string {
  const sign = createSigner({
    key: jwtSecret,
    algorithm: 'HS256',
    expiresIn: opts.ttlSeconds * 1000,
    ...(config.jwt.issuer ? { iss: config.jwt.issuer } : {}),
    ...(config.jwt.audience ? { aud: config.jwt.audience } : {}),
  });
  return sign({ sub: opts.sub, role: opts.role ?? config.jwt.adminRole, ...opts.extra });
}

/** Parses durations like 90s, 15m, 1h, 7d (or plain seconds). */
export function parseTtl(text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw new Error(`invalid --ttl "${text}": use e.g. 900, 15m, 1h or 7d (a positive duration)`);
  }
}
