import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { errors } from '../errors.js';
import type { Actor } from '../identity/actor.js';
import { isStorableText } from '../storable-text.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
  }
  interface FastifyInstance {
    /** Verifies a bearer JWT and returns the admin actor; throws 401/403 AppErrors. */
    verifyAdminJwt: (token: string) => Actor;
  }
}

export const MAX_TOKEN_LENGTH = 8192;
const CLOCK_SKEW_S = 60;

// fast-jwt's error codes, translated into what a caller can act on (never the token itself).
function describe(err: unknown): string {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'FAST_JWT_EXPIRED') return 'the token has expired';
  if (code === 'FAST_JWT_INACTIVE') return 'the token is not valid yet (nbf)';
  if (code === 'FAST_JWT_INVALID_SIGNATURE')
    return 'the signature does not verify (was it minted with a different JWT_SECRET, or in another DATA_DIR, than this server uses?)';
  if (code === 'FAST_JWT_INVALID_ALGORITHM') return 'the token algorithm is not accepted';
  if (code === 'FAST_JWT_INVALID_CLAIM_VALUE') return 'the issuer or audience is not accepted';
  if (code === 'FAST_JWT_MISSING_SIGNATURE') return 'the token is not signed';
  if (code === 'FAST_JWT_MISSING_REQUIRED_CLAIM') {
    // fast-jwt names the claim ("The exp claim is required."); never the token.
    return /^The exp claim is required/.test((err as Error).message)
      ? 'the token has no expiry (exp is required)'
      : 'the token lacks the issuer or audience claim';
  }
  return 'the token is malformed';
}

/** The one accepted algorithm: JWT_ALGORITHM, else RS256 with a public key, else HS256. */
export function jwtAlgorithm(config: Config): 'HS256' | 'RS256' | 'ES256' {
  return config.jwt.algorithm ?? (config.jwt.publicKey ? 'RS256' : 'HS256');
}

export function countHeader(raw: string[], name: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === name) n++;
  return n;
}

/**
 * Bearer-JWT verification with pinned algorithms: HS256 with JWT_SECRET, or RS256/ES256
 * with JWT_PUBLIC_KEY. exp is required and at most JWT_MAX_TTL ahead, nbf is honoured, a
 * string sub is required; iss and aud when configured.
 */
export const jwtPlugin = fp(async (app: FastifyInstance, opts: { config: Config; jwtSecret: string }) => {
  const { jwt } = opts.config;
  const algorithm = jwtAlgorithm(opts.config);
  const asymmetric = algorithm !== 'HS256';
  await app.register(fastifyJwt, {
    // Asymmetric: only the public key. A placeholder private key made registration throw
    // ("Invalid private key provided for algorithm RS256"), so RS256/ES256 never started.
    secret: asymmetric ? { public: jwt.publicKey! } : opts.jwtSecret,
    sign: { algorithm },
    verify: {
      algorithms: [algorithm],
      ...(jwt.issuer ? { allowedIss: jwt.issuer } : {}),
      ...(jwt.audience ? { allowedAud: jwt.audience } : {}),
      // allowedIss/allowedAud only check claims that are present; a token without them
      // must not pass when an issuer or audience is configured.
      // exp too: a token without one would never expire.
      requiredClaims: ['exp', ...(jwt.issuer ? ['iss'] : []), ...(jwt.audience ? ['aud'] : [])],
    },
  });
  app.decorateRequest('actor', null);
  // Tokens that verified, by the token itself: callers present the same token again and
  // again, and verifying it (signature, JSON parse, claims; fast-jwt's own cache still
  // hashed the token with SHA-256 first) was a few % of the read path's CPU. An entry is
  // used only before the token's exp, checked on every use with fast-jwt's rule (expired
  // when exp <= now); everything else checked below depends only on the token, or (the
  // maximum lifetime) only gets easier to meet as time passes. Refusals are never cached.
  // Bounded: the oldest entry goes when it is full.
  const verified = new Map<string, { actor: Actor; expMs: number }>();
  const VERIFIED_MAX = 1000;
  app.decorate('verifyAdminJwt', (token: string): Actor => {
    const hit = verified.get(token);
    if (hit) {
      if (hit.expMs > Date.now()) return hit.actor;
      verified.delete(token);
    }
    const { actor, exp } = verifyAdminJwt(token);
    if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value as string);
    verified.set(token, { actor, expMs: exp * 1000 });
    return actor;
  });
  const verifyAdminJwt = (token: string): { actor: Actor; exp: number } => {
    if (token.length > MAX_TOKEN_LENGTH) throw errors.badToken('the token is too long');
    let payload: Record<string, unknown>;
    try {
      payload = app.jwt.verify<Record<string, unknown>>(token);
    } catch (err) {
      throw errors.badToken(describe(err));
    }
    // fast-jwt checks that exp is in the future; this bounds how far: a token minted for the
    // year 3000 is as good as one that never expires. CLOCK_SKEW_S tolerates minting clocks
    // slightly ahead of ours.
    const exp = payload.exp;
    if (typeof exp !== 'number' || exp - Date.now() / 1000 > jwt.maxTtlSeconds + CLOCK_SKEW_S) {
      throw errors.badToken('the token lives longer than the maximum lifetime this service accepts');
    }
    // Without a subject every holder would share one identity in audit rows and limits.
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw errors.badToken('the token has no subject (sub must be a string)');
    }
    // The subject is stored (createdBy, lastUsedBy, audit actor): text the database cannot hold is refused here.
    if (!isStorableText(payload.sub)) {
      throw errors.badToken('the token subject must be text without NUL characters or unpaired surrogates');
    }
    if (payload.role !== jwt.adminRole) throw errors.notAdmin();
    return { actor: { kind: 'admin', sub: payload.sub.slice(0, 200) }, exp };
  };
});
