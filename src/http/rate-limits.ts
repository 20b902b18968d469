import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Actor, actorId } from '../auth/actor.js';
import { errors } from './errors.js';

/**
 * Per-identity limits built on @fastify/rate-limit's manual limiters, so they share its
 * store: in process, or Redis when REDIS_URL is set (several instances, one set of counters).
 * Keys carry their own prefix because every manual limiter shares the plugin's namespace.
 */
export function createLimits(
  app: FastifyInstance,
  opts: { readPerMinute: number; authFailuresPerMinute: number },
) {
  const reads = app.createRateLimit({
    max: opts.readPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `read:${actorId(req.actor as Actor | null)}`,
  });
  const authFailures = app.createRateLimit({
    max: opts.authFailuresPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `authfail:${req.ip}`,
  });
  const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));

  return {
    /** Counts one value read for the caller's identity; 429 once over the limit. */
    async read(req: FastifyRequest): Promise<void> {
      const r = await reads(req);
      if (!r.isAllowed && r.isExceeded) throw errors.rateLimited(retryAfter(r.ttl));
    },

    /**
     * Before authenticating: 429 when this IP has used up its failed attempts, so a
     * blocked client cannot keep guessing (a peek, which counts nothing).
     */
    async checkAuthFailures(req: FastifyRequest): Promise<void> {
      const r = await authFailures(req, { increment: false });
      if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) throw errors.rateLimited(retryAfter(r.ttl));
    },

    async countAuthFailure(req: FastifyRequest): Promise<void> {
      await authFailures(req);
    },
  };
}

export type Limits = ReturnType<typeof createLimits>;
