import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type AppError, errors } from '../errors.js';
import { type Actor, actorId } from '../identity/actor.js';

/** The limits whose 429s leave no audit row of their own, each named by the setting that configures it. */
export type SuppressingLimit = 'REFUSAL_RATE_LIMIT' | 'AUTH_FAILURE_RATE_LIMIT' | 'LOGIN_RATE_LIMIT';

/**
 * Where those 429s are counted, for their summary rows: the audit's SuppressedRefusals,
 * which the app hands in. Declared here, not imported, so that src/http/ imports no
 * feature: every feature's routes import src/http/.
 */
export interface RefusalTally {
  note(limit: SuppressingLimit, by: 'identity' | 'address', actor: string, clientIp: string): void;
}

/** Identities remembered as over REFUSAL_RATE_LIMIT on this instance (see overRefusals). */
const MAX_OVER_REFUSALS = 10_000;

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
  suppressed: RefusalTally,
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
  /**
   * Identities this instance has seen reach REFUSAL_RATE_LIMIT, with when their window ends
   * (ms since the epoch): only their requests peek at the shared counter (overRefusals).
   * Insertion order is age: past MAX_OVER_REFUSALS the oldest is forgotten (it is learnt
   * again from its next counted refusal).
   */
  const overRefusalsUntil = new Map<string, number>();
  const rememberOver = (id: string, ttlMs: number) => {
    overRefusalsUntil.delete(id);
    if (overRefusalsUntil.size >= MAX_OVER_REFUSALS) {
      const oldest = overRefusalsUntil.keys().next();
      if (!oldest.done) overRefusalsUntil.delete(oldest.value);
    }
    overRefusalsUntil.set(id, Date.now() + (ttlMs > 0 ? ttlMs : 60_000));
  };
  /**
   * Refusals being counted, by identity: a request that follows a refusal of its identity
   * waits for that count, so that on one instance a refusal counted is always seen by the
   * next request (as a peek queued behind the increment was). Bounded by requests in flight.
   */
  const counting = new Map<string, Promise<void>>();
  const forget = (id: string, p: Promise<void>) => {
    if (counting.get(id) === p) counting.delete(id);
  };
  const mayBeOverRefusals = (id: string): boolean => {
    const until = overRefusalsUntil.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    overRefusalsUntil.delete(id);
    return false;
  };
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
     *
     * It runs on every authenticated request, so it must cost nothing for callers that are
     * not over the limit: with REDIS_URL a peek is a Redis round trip. The shared counter is
     * peeked only for identities this instance has seen reach the limit (countRefusal's
     * increment returns the count, so learning it costs nothing extra). Trade-off: a caller
     * that spreads its refusals over N instances is not stopped by an instance that has not
     * seen it reach the limit until one more of its refusals is counted there. So past the
     * limit each instance serves at most one more refused request per identity and window
     * (served in full and audited with its own row, as any refusal under the limit), and a
     * well-formed request of that identity is served there rather than refused. That is at
     * most N - 1 extra refusals per identity and window, against one round trip per request
     * for every caller; the limit bounds abuse, it is not an access control.
     */
    async overRefusals(req: FastifyRequest): Promise<{ error: AppError; audit: boolean } | null> {
      const id = byIdentity(req);
      const pending = counting.get(id);
      if (pending) await pending;
      if (!mayBeOverRefusals(id)) return null;
      const peek = await refusals(req, { increment: false });
      if (peek.isAllowed || peek.remaining > 0 || peek.ttl <= 0) {
        // The window ended (or Redis did not answer): peek again only after a new crossing.
        overRefusalsUntil.delete(id);
        return null;
      }
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
    /**
     * Counts one refused request of the authenticated caller (REFUSAL_RATE_LIMIT); once the
     * count reaches the limit, this instance peeks at the identity's counter (overRefusals).
     */
    countRefusal(req: FastifyRequest): Promise<void> {
      const id = byIdentity(req);
      const done = refusals(req).then((r) => {
        if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) rememberOver(id, r.ttl);
      });
      // Waiters only need it settled: its error is the caller's (logged by the guard).
      const settled: Promise<void> = done.then(
        () => forget(id, settled),
        () => forget(id, settled),
      );
      counting.set(id, settled);
      return done;
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
