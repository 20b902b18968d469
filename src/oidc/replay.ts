import type { Redis } from 'ioredis';
import { errors } from '../errors.js';

/**
 * Remembers the ID tokens already exchanged (by issuer and `jti`) until they expire, so a
 * token cannot be traded twice. In Redis when REDIS_URL is set (every instance sees every
 * exchange: SET NX with the token's remaining lifetime), in this process otherwise (a
 * second instance would not see the first one's exchanges; docs/ci.md says so).
 */
export interface ReplayGuard {
  /** True the first time `id` is seen within `ttlMs`; false for a replay. */
  firstUse(id: string, ttlMs: number): Promise<boolean>;
}

/** The exchanges of this process, each remembered until its token expires. */
export class MemoryReplayGuard implements ReplayGuard {
  private readonly seen = new Map<string, number>();
  private nextSweep = 0;

  constructor(private readonly deps: { now?: () => number } = {}) {}

  async firstUse(id: string, ttlMs: number): Promise<boolean> {
    const t = (this.deps.now ?? Date.now)();
    // Expired entries are dropped at most once a second, in one pass: the map holds only
    // tokens that are still valid, so it is bounded by the exchanges of one token lifetime.
    if (t >= this.nextSweep) {
      for (const [k, until] of this.seen) if (until <= t) this.seen.delete(k);
      this.nextSweep = t + 1000;
    }
    const until = this.seen.get(id);
    if (until !== undefined && until > t) return false;
    this.seen.set(id, t + ttlMs);
    return true;
  }
}

/** Every instance's exchanges, in Redis (SET NX with the token's remaining lifetime). */
export class RedisReplayGuard implements ReplayGuard {
  constructor(private readonly deps: { redis: Redis; namespace: string }) {}

  async firstUse(id: string, ttlMs: number): Promise<boolean> {
    let r: string | null;
    try {
      r = await this.deps.redis.set(
        `${this.deps.namespace}jti:${id}`,
        '1',
        'PX',
        Math.max(1, Math.ceil(ttlMs)),
        'NX',
      );
    } catch {
      // Replay protection is an access control: without its store the exchange fails closed.
      throw errors.dependencyUnavailable(
        'Token exchange is unavailable: the replay store (Redis) cannot be reached',
        'Retry shortly; check REDIS_URL',
      );
    }
    return r === 'OK';
  }
}
