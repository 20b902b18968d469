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

/** One limiter a minute wide: `max` per key, the key named by `prefix` and `of` the request. */
const perMinute = (app: FastifyInstance, max: number, prefix: string, of: (req: FastifyRequest) => string) =>
  app.createRateLimit({
    max,
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `${prefix}:${of(req)}`,
  });
const byIdentity = (req: FastifyRequest) => actorId(req.actor as Actor | null);
const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));

export interface LimitsDeps {
  app: FastifyInstance;
  readPerMinute: number;
  authFailuresPerMinute: number;
  batchEntriesPerMinute: number;
  refusalsPerMinute: number;
  /** Where 429s that leave no audit row of their own are counted, for their summary rows. */
  suppressed: RefusalTally;
}

type Limiter = ReturnType<typeof perMinute>;

/**
 * Per-identity limits built on @fastify/rate-limit's manual limiters, so they share its
 * store: in process, or Redis when REDIS_URL is set (several instances, one set of counters).
 * Keys carry their own prefix because every manual limiter shares the plugin's namespace.
 */
export class Limits {
  private readonly reads: Limiter;
  private readonly authFailures: Limiter;
  private readonly batchEntries: Limiter;
  private readonly refusals: Limiter;
  /**
   * Identities this instance has seen reach REFUSAL_RATE_LIMIT, with when their window ends
   * (ms since the epoch): only their requests peek at the shared counter (overRefusals).
   * Insertion order is age: past MAX_OVER_REFUSALS the oldest is forgotten (it is learnt
   * again from its next counted refusal).
   */
  private readonly overRefusalsUntil = new Map<string, number>();
  /**
   * Refusals being counted, by identity: a request that follows a refusal of its identity
   * waits for that count, so that on one instance a refusal counted is always seen by the
   * next request (as a peek queued behind the increment was). Bounded by requests in flight.
   */
  private readonly counting = new Map<string, Promise<void>>();

  constructor(private readonly deps: LimitsDeps) {
    const { app } = deps;
    this.reads = perMinute(app, deps.readPerMinute, 'read', byIdentity);
    this.authFailures = perMinute(app, deps.authFailuresPerMinute, 'authfail', (req) => req.ip);
    this.batchEntries = perMinute(app, deps.batchEntriesPerMinute, 'batch', byIdentity);
    this.refusals = perMinute(app, deps.refusalsPerMinute, 'refused', byIdentity);
  }

  /** Counts one value read for the caller's identity; 429 once over the limit. */
  async countRead(req: FastifyRequest): Promise<void> {
    const r = await this.reads(req);
    if (!r.isAllowed && r.isExceeded) throw errors.rateLimited(retryAfter(r.ttl));
  }

  /**
   * Counts `n` values returned at once (export, render) against the caller's read limit:
   * 429 without counting anything when fewer than `n` reads are left this minute. The
   * store has no "add n", so it is n increments (pipelined on Redis); a race between two
   * bulk reads can overshoot by at most one batch.
   */
  async readMany(req: FastifyRequest, n: number): Promise<void> {
    if (n <= 0) return;
    const peek = await this.reads(req, { increment: false });
    // isAllowed is true only for an allow-listed key (none here): no limit applies.
    if (!peek.isAllowed && (peek.isExceeded || peek.remaining < n)) {
      throw errors.rateLimited(retryAfter(peek.ttl > 0 ? peek.ttl : 60_000));
    }
    await Promise.all(Array.from({ length: n }, () => this.reads(req)));
  }

  /**
   * After a credential failed to verify: 429 when this IP has used up its failed attempts
   * (a peek, which counts nothing). Never called for a credential that verifies, so other
   * callers' failures behind the same address never lock out a valid token.
   */
  async checkAuthFailures(req: FastifyRequest): Promise<void> {
    const r = await this.authFailures(req, { increment: false });
    if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) {
      // No row of its own (a blocked address's flood would write one each): summarised.
      this.deps.suppressed.note('AUTH_FAILURE_RATE_LIMIT', 'address', 'anonymous', req.ip);
      throw errors.rateLimited(retryAfter(r.ttl));
    }
  }

  /** A login refused by LOGIN_RATE_LIMIT (the route's own limiter): no row of its own, summarised. */
  loginLimited(req: FastifyRequest): void {
    this.deps.suppressed.note('LOGIN_RATE_LIMIT', 'address', 'anonymous', req.ip);
  }

  async countAuthFailure(req: FastifyRequest): Promise<void> {
    await this.authFailures(req);
  }

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
    const pending = this.counting.get(id);
    if (pending) await pending;
    if (!this.mayBeOverRefusals(id)) return null;
    const peek = await this.refusals(req, { increment: false });
    if (peek.isAllowed || peek.remaining > 0 || peek.ttl <= 0) {
      // The window ended (or Redis did not answer): peek again only after a new crossing.
      this.overRefusalsUntil.delete(id);
      return null;
    }
    const error = errors.tooManyRefusals(retryAfter(peek.ttl), this.deps.refusalsPerMinute);
    if (peek.isExceeded) {
      this.deps.suppressed.note('REFUSAL_RATE_LIMIT', 'identity', id, req.ip);
      return { error, audit: false };
    }
    await this.refusals(req);
    return { error, audit: true };
  }

  /** An answer of REFUSAL_RATE_LIMIT that leaves no row of its own: counted in the summary. */
  suppressedRefusal(req: FastifyRequest): void {
    this.deps.suppressed.note('REFUSAL_RATE_LIMIT', 'identity', byIdentity(req), req.ip);
  }

  /**
   * Counts one refused request of the authenticated caller (REFUSAL_RATE_LIMIT); once the
   * count reaches the limit, this instance peeks at the identity's counter (overRefusals).
   */
  countRefusal(req: FastifyRequest): Promise<void> {
    const id = byIdentity(req);
    const done = this.refusals(req).then((r) => {
      if (!r.isAllowed && r.remaining <= 0 && r.ttl > 0) this.rememberOver(id, r.ttl);
    });
    // Waiters only need it settled: its error is the caller's (logged by the guard).
    const settled: Promise<void> = done.then(
      () => this.forget(id, settled),
      () => this.forget(id, settled),
    );
    this.counting.set(id, settled);
    return done;
  }

  /** Batch-import entries (BATCH_ENTRY_RATE_LIMIT): 429 when none are left (a peek, before the body is read). */
  async peekBatchEntries(req: FastifyRequest): Promise<void> {
    const r = await this.batchEntries(req, { increment: false });
    if (!r.isAllowed && (r.isExceeded || r.remaining <= 0) && r.ttl > 0) throw this.overBatchEntries(r.ttl);
  }

  /** Counts `n` imported entries; 429 without counting when fewer than `n` are left (as readMany). */
  async chargeBatchEntries(req: FastifyRequest, n: number): Promise<void> {
    if (n <= 0) return;
    const peek = await this.batchEntries(req, { increment: false });
    if (!peek.isAllowed && (peek.isExceeded || peek.remaining < n)) throw this.overBatchEntries(peek.ttl);
    await Promise.all(Array.from({ length: n }, () => this.batchEntries(req)));
  }

  private rememberOver(id: string, ttlMs: number) {
    this.overRefusalsUntil.delete(id);
    if (this.overRefusalsUntil.size >= MAX_OVER_REFUSALS) {
      const oldest = this.overRefusalsUntil.keys().next();
      if (!oldest.done) this.overRefusalsUntil.delete(oldest.value);
    }
    this.overRefusalsUntil.set(id, Date.now() + (ttlMs > 0 ? ttlMs : 60_000));
  }

  private forget(id: string, p: Promise<void>) {
    if (this.counting.get(id) === p) this.counting.delete(id);
  }

  private mayBeOverRefusals(id: string): boolean {
    const until = this.overRefusalsUntil.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.overRefusalsUntil.delete(id);
    return false;
  }

  private overBatchEntries(ttlMs: number) {
    return errors.rateLimited(
      retryAfter(ttlMs > 0 ? ttlMs : 60_000),
      `Too many entries imported: at most ${this.deps.batchEntriesPerMinute} per identity per minute (BATCH_ENTRY_RATE_LIMIT)`,
    );
  }
}
