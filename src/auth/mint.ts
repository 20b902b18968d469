import { createSigner } from 'fast-jwt';
import type { Config } from '../config.js';

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
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m?.[1]) throw new Error(`invalid --ttl "${text}": use e.g. 900, 15m, 1h or 7d`);
  const n = Number(m[1]);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? ''] ?? 1;
  if (n <= 0) throw new Error('--ttl must be positive');
  return n * unit;
}
