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

export function memoryReplayGuard(now: () => number = Date.now): ReplayGuard {
  const seen = new Map<string, number>();
  let nextSweep = 0;
  return {
    async firstUse(id, ttlMs) {
      const t = now();
      // Expired entries are dropped at most once a second, in one pass: the map holds only
      // tokens that are still valid, so it is bounded by the exchanges of one token lifetime.
      if (t >= nextSweep) {
        for (const [k, until] of seen) if (until <= t) seen.delete(k);
        nextSweep = t + 1000;
      }
      const until = seen.get(id);
      if (until !== undefined && until > t) return false;
      seen.set(id, t + ttlMs);
      return true;
    },
  };
}

export function redisReplayGuard(redis: Redis, namespace: string): ReplayGuard {
  return {
    async firstUse(id, ttlMs) {
      let r: string | null;
      try {
        r = await redis.set(`${namespace}jti:${id}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
      } catch {
        // Replay protection is an access control: without its store the exchange fails closed.
        throw errors.dependencyUnavailable(
          'Token exchange is unavailable: the replay store (Redis) cannot be reached',
          'Retry shortly; check REDIS_URL',
        );
      }
      return r === 'OK';
    },
  };
}
