import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import { type Actor, actorId } from '../identity/actor.js';

/**
 * Per-identity limits built on @fastify/rate-limit's manual limiters, so they share its
 * store: in process, or Redis when REDIS_URL is set (several instances, one set of counters).
 * Keys carry their own prefix because every manual limiter shares the plugin's namespace.
 */
export function createLimits(
  app: FastifyInstance,
  opts: { readPerMinute: number; authFailuresPerMinute: number; batchEntriesPerMinute: number },
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
  const batchEntries = app.createRateLimit({
    max: opts.batchEntriesPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `batch:${actorId(req.actor as Actor | null)}`,
  });
  const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));
  const overBatchEntries = (ttlMs: number) =>
    errors.rateLimited(
      retryAfter(ttlMs > 0 ? ttlMs : 60_000),
      `Too many entries imported: at most ${opts.batchEntriesPerMinute} per identity per minute (BATCH_ENTRY_RATE_LIMIT)`,
    );

  return {
    /** Counts one value read for the caller's identity; 429 once over the limit. */
    async read(req: FastifyRequest): Promise<void> {
      const r = await reads(req);
      if (!r.isAllowed && r.isExceeded) throw errors.rateLimited(retryAfter(r.ttl));
    },

    /**
     * Counts `n` values returned at once (export, render) against the caller's read limit:
     * 429 without counting anything when fewer than `n` reads are left this minute. The
     * store has no "add n", so it is n increments (pipelined on Redis); a race between two
     * bulk reads can overshoot by at most one batch.
     */
    async readMany(req: FastifyRequest, n: number): Promise<void> {
      if (n <= 0) return;
      const peek = await reads(req, { increment: false });
      // isAllowed is true only for an allow-listed key (none here): no limit applies.
      if (!peek.isAllowed && (peek.isExceeded || peek.remaining < n)) {
        throw errors.rateLimited(retryAfter(peek.ttl > 0 ? peek.ttl : 60_000));
      }
      await Promise.all(Array.from({ length: n }, () => reads(req)));
    },

    /**
     * After a credential failed to verify: 429 when this IP has used up its failed attempts
     * (a peek, which counts nothing). Never called for a credential that verifies, so other
     * callers' failures behind the same address never lock out a valid token.
     */
    async checkAuthFailures(req: FastifyRequest): Promise<void> {
      const r = await authFailures(req, { increment: false });
      if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) throw errors.rateLimited(retryAfter(r.ttl));
    },

    async countAuthFailure(req: FastifyRequest): Promise<void> {
      await authFailures(req);
    },
    /** Batch-import entries (BATCH_ENTRY_RATE_LIMIT): 429 when none are left (a peek, before the body is read). */
    async peekBatchEntries(req: FastifyRequest): Promise<void> {
      const r = await batchEntries(req, { increment: false });
      if (!r.isAllowed && (r.isExceeded || r.remaining <= 0) && r.ttl > 0) throw overBatchEntries(r.ttl);
    },
    /** Counts `n` imported entries; 429 without counting when fewer than `n` are left (as readMany). */
    async chargeBatchEntries(req: FastifyRequest, n: number): Promise<void> {
      if (n <= 0) return;
      const peek = await batchEntries(req, { increment: false });
      if (!peek.isAllowed && (peek.isExceeded || peek.remaining < n)) throw overBatchEntries(peek.ttl);
      await Promise.all(Array.from({ length: n }, () => batchEntries(req)));
    },
  };
}

export type Limits = ReturnType<typeof createLimits>;
