import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../config.js';
import { errors } from '../errors.js';
import { errorResponse } from '../http/schemas.js';
import { jwtAlgorithm } from './jwt.js';

export const LOGIN_TTL_SECONDS = 15 * 60;

// Hashing both sides first gives equal-length buffers, so the comparison time depends
// neither on where the strings differ nor on their lengths.
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
export const safeEqual = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

const ONLY_WHEN =
  'The route exists only when ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD are set (and JWT_SECRET signs HS256); otherwise it answers 404 NOT_FOUND saying so.';

/**
 * Login is off: the route still answers, 404 as before (InsForge has no such route without
 * a root admin either), but with a body that says why and how to turn it on, instead of a
 * bare "Route not found" that reads like a wrong URL. Documented in the served OpenAPI
 * document, so /docs on this service says the same.
 */
function loginNotConfigured(app: FastifyInstance, how: string) {
  app.post(
    '/api/auth/admin/sessions',
    {
      schema: {
        tags: ['Auth'],
        summary: 'Admin login (not configured on this service)',
        description: ONLY_WHEN,
        response: { 404: errorResponse },
      },
    },
    async () => {
      throw errors.notFound(
        'Login is not configured on this service',
        `To log in with a username and password, ${how} and restart the service; or mint an admin token on the server with npm run -s token -- --sub NAME`,
      );
    },
  );
}

/**
 * InsForge-compatible admin login: POST /api/auth/admin/sessions {username, password}
 * -> {accessToken, admin}. Registered only when ROOT_ADMIN_USERNAME/PASSWORD are set.
 */
export async function loginRoutes(
  app: FastifyInstance,
  opts: {
    config: Config;
    /** Called for every refused login (audit row, failed-authentication counter). */
    onFailure?: (req: FastifyRequest) => Promise<void>;
    /** Called for every login answered 429 by LOGIN_RATE_LIMIT (it leaves no row of its own). */
    onLimited?: (req: FastifyRequest) => void;
  },
) {
  const root = opts.config.rootAdmin;
  if (!root) return loginNotConfigured(app, 'set ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD');
  // Only the HS256 secret can sign here; an RS256/ES256 service holds just the public key.
  // Registering the route anyway answered 500 for the right password (and 401 for a wrong
  // one): a password oracle that could never log anyone in.
  if (jwtAlgorithm(opts.config) !== 'HS256') {
    app.log.warn(
      'ROOT_ADMIN_USERNAME/ROOT_ADMIN_PASSWORD are ignored: login needs an HS256 JWT_SECRET to sign with; mint RS256/ES256 tokens where the private key is kept',
    );
    return loginNotConfigured(
      app,
      'login needs an HS256 JWT_SECRET (this service verifies RS256/ES256 tokens)',
    );
  }
  app.withTypeProvider<ZodTypeProvider>().post(
    '/api/auth/admin/sessions',
    {
      config: {
        rateLimit: {
          max: opts.config.loginRateLimit,
          timeWindow: '1 minute',
          ...(opts.onLimited ? { onExceeded: opts.onLimited } : {}),
        },
      },
      schema: {
        tags: ['Auth'],
        summary: 'Admin login',
        description: `Exchanges the root admin credentials for a ${LOGIN_TTL_SECONDS / 60}-minute admin JWT. ${ONLY_WHEN}`,
        body: z.object(
          {
            username: z.string({ error: 'username and password are required strings' }).max(256),
            password: z.string({ error: 'username and password are required strings' }).max(1024),
          },
          { error: 'Request body must be a JSON object' },
        ),
        response: {
          200: z.object({ accessToken: z.string(), admin: z.object({ sub: z.string() }) }),
          400: errorResponse,
          401: errorResponse,
          429: errorResponse,
        },
      },
    },
    async (req) => {
      const userOk = safeEqual(req.body.username, root.username);
      const passOk = safeEqual(req.body.password, root.password);
      if (!(userOk && passOk)) {
        await opts.onFailure?.(req);
        throw errors.badLogin();
      }
      const sub = root.username;
      const accessToken = app.jwt.sign(
        { sub, role: opts.config.jwt.adminRole, type: 'admin' },
        {
          expiresIn: `${LOGIN_TTL_SECONDS}s`,
          ...(opts.config.jwt.issuer ? { iss: opts.config.jwt.issuer } : {}),
          ...(opts.config.jwt.audience ? { aud: opts.config.jwt.audience } : {}),
        },
      );
      return { accessToken, admin: { sub } };
    },
  );
}
