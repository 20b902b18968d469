import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SuppressedRefusals } from '../audit/suppressed.js';
import { type AppError, errors } from '../errors.js';
import { type Actor, actorId } from '../identity/actor.js';

/**
 * Per-identity limits built on @fastify/rate-limit's manual limiters, so they share its
 * store: in process, or Redis when REDIS_URL is set (several instances, one set of counters).
 * Keys carry their own prefix because every manual limiter shares the plugin's namespace.
 */
export function createLimits(
  app: FastifyInstance,
  opts: {
    readPerMinute: number;
    authFailuresPerMinute: number;
    batchEntriesPerMinute: number;
    refusalsPerMinute: number;
  },
  /** Where 429s that leave no audit row of their own are counted, for their summary rows. */
  suppressed: Pick<SuppressedRefusals, 'note'>,
) {
  /** One limiter a minute wide: `max` per key, the key named by `prefix` and `of` the request. */
  const perMinute = (max: number, prefix: string, of: (req: FastifyRequest) => string) =>
    app.createRateLimit({
      max,
      timeWindow: 60_000,
      keyGenerator: (req: FastifyRequest) => `${prefix}:${of(req)}`,
    });
  const byIdentity = (req: FastifyRequest) => actorId(req.actor as Actor | null);
  const reads = perMinute(opts.readPerMinute, 'read', byIdentity);
  const authFailures = perMinute(opts.authFailuresPerMinute, 'authfail', (req) => req.ip);
  const batchEntries = perMinute(opts.batchEntriesPerMinute, 'batch', byIdentity);
  const refusals = perMinute(opts.refusalsPerMinute, 'refused', byIdentity);
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
      if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) {
        // No row of its own (a blocked address's flood would write one each): summarised.
        suppressed.note('AUTH_FAILURE_RATE_LIMIT', 'address', 'anonymous', req.ip);
        throw errors.rateLimited(retryAfter(r.ttl));
      }
    },

    /** A login refused by LOGIN_RATE_LIMIT (the route's own limiter): no row of its own, summarised. */
    loginLimited(req: FastifyRequest): void {
      suppressed.note('LOGIN_RATE_LIMIT', 'address', 'anonymous', req.ip);
    },

    async countAuthFailure(req: FastifyRequest): Promise<void> {
      await authFailures(req);
    },
    /**
     * Before an authenticated caller's body is read: the 429 to answer once the identity has
     * been refused REFUSAL_RATE_LIMIT times this minute, else null. `audit` is true for the
     * one answer that crossed the limit (it is counted, so the rest of the window is refused
     * without counting): one audit row of its own, and the rest of the window is counted in
     * the identity's summary row (SuppressedRefusals), not one row per refusal.
     */
    async overRefusals(req: FastifyRequest): Promise<{ error: AppError; audit: boolean } | null> {
      const id = byIdentity(req);
      const peek = await refusals(req, { increment: false });
      if (peek.isAllowed || peek.remaining > 0 || peek.ttl <= 0) return null;
      const error = errors.tooManyRefusals(retryAfter(peek.ttl), opts.refusalsPerMinute);
      if (peek.isExceeded) {
        suppressed.note('REFUSAL_RATE_LIMIT', 'identity', id, req.ip);
        return { error, audit: false };
      }
      await refusals(req);
      return { error, audit: true };
    },
    /** An answer of REFUSAL_RATE_LIMIT that leaves no row of its own: counted in the summary. */
    suppressedRefusal(req: FastifyRequest): void {
      suppressed.note('REFUSAL_RATE_LIMIT', 'identity', byIdentity(req), req.ip);
    },
    /** Counts one refused request of the authenticated caller (REFUSAL_RATE_LIMIT). */
    async countRefusal(req: FastifyRequest): Promise<void> {
      await refusals(req);
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
