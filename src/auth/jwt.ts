import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { errors } from '../http/errors.js';

/** Who is calling: stamped on the request by the guard, used for lastUsedBy and audit. */
export interface Actor {
  kind: 'admin';
  sub: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
  }
  interface FastifyInstance {
    requireAdmin: (req: FastifyRequest) => Promise<void>;
  }
}

const MAX_TOKEN_LENGTH = 8192;

// fast-jwt's error codes, translated into what a caller can act on (never the token itself).
function describe(err: unknown): string {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'FAST_JWT_EXPIRED') return 'the token has expired';
  if (code === 'FAST_JWT_INACTIVE') return 'the token is not valid yet (nbf)';
  if (code === 'FAST_JWT_INVALID_SIGNATURE') return 'the signature does not verify';
  if (code === 'FAST_JWT_INVALID_ALGORITHM') return 'the token algorithm is not accepted';
  if (code === 'FAST_JWT_INVALID_CLAIM_VALUE') return 'the issuer or audience is not accepted';
  if (code === 'FAST_JWT_MISSING_SIGNATURE') return 'the token is not signed';
  return 'the token is malformed';
}

function countHeader(raw: string[], name: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === name) n++;
  return n;
}

/**
 * Bearer-JWT verification with pinned algorithms: HS256 with JWT_SECRET, or RS256/ES256
 * with JWT_PUBLIC_KEY. exp and nbf are enforced; iss and aud when configured.
 */
export const jwtPlugin = fp(async (app: FastifyInstance, opts: { config: Config; jwtSecret: string }) => {
  const { jwt } = opts.config;
  const algorithm = jwt.algorithm ?? (jwt.publicKey ? 'RS256' : 'HS256');
  const asymmetric = algorithm !== 'HS256';
  await app.register(fastifyJwt, {
    // Asymmetric: verify-only (no private key). A placeholder private key made fast-jwt
    // refuse to start ("Invalid private key provided for algorithm RS256").
    secret: asymmetric ? { public: jwt.publicKey! } : opts.jwtSecret,
    sign: { algorithm },
    verify: {
      algorithms: [algorithm],
      ...(jwt.issuer ? { allowedIss: jwt.issuer } : {}),
      ...(jwt.audience ? { allowedAud: jwt.audience } : {}),
      // allowedIss/allowedAud only check a claim that is present; a token without it passed.
      requiredClaims: [...(jwt.issuer ? ['iss'] : []), ...(jwt.audience ? ['aud'] : [])],
    },
  });
  app.decorateRequest('actor', null);
  app.decorate('requireAdmin', async (req: FastifyRequest) => {
    const header = req.headers.authorization;
    if (header === undefined || header === '') throw errors.noCredentials();
    // Node keeps only the first of repeated Authorization headers; a proxy may check another
    // one. Ambiguous credentials are refused rather than resolved.
    if (countHeader(req.raw.rawHeaders, 'authorization') > 1) {
      throw errors.badToken('send exactly one Authorization header');
    }
    // The scheme is matched exactly: anything but "Bearer <token>" is refused rather than guessed at.
    const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(header);
    if (!m?.[1]) throw errors.badToken('expected the header "Authorization: Bearer <token>"');
    if (m[1].length > MAX_TOKEN_LENGTH) throw errors.badToken('the token is too long');
    let payload: Record<string, unknown>;
    try {
      payload = app.jwt.verify<Record<string, unknown>>(m[1]);
    } catch (err) {
      throw errors.badToken(describe(err));
    }
    if (payload.role !== jwt.adminRole) throw errors.notAdmin();
    const sub =
      typeof payload.sub === 'string' && payload.sub.length > 0 ? payload.sub.slice(0, 200) : 'admin';
    req.actor = { kind: 'admin', sub };
  });
});
