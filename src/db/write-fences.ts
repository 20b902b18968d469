import type { Redis } from 'ioredis';

/**
 * Read-your-own-writes fences: for each caller, the WAL position of its last write's commit.
 * A replica may serve that caller only once it has replayed past it (src/db/read-replicas.ts).
 *
 * A fence is kept for `ttlMs`, longer than the replica lag bound: a replica allowed to
 * serve has replayed everything committed more than the bound ago, so an older fence can
 * no longer exclude anything and is dropped. (The argument uses durations only, so clock
 * offsets between instances and Redis do not matter.)
 *
 * In memory, a fence holds for the instance that took the write. With Redis (REDIS_URL)
 * every instance sees it too, so a caller behind a load balancer whose next request lands
 * elsewhere still reads its own write. When Redis cannot be read the caller's reads go to
 * the primary; when it cannot be written the write still succeeds (it is committed) and the
 * fence holds on this instance only: other instances may then serve that caller data up to
 * the lag bound old (logged).
 */

export interface WriteFences {
  /** The caller's fence (a WAL position), undefined when it has none; throws when unknown. */
  get(caller: string): Promise<bigint | undefined>;
  /** Raises the caller's fence to `lsn` (never lowers it). */
  raise(caller: string, lsn: bigint): Promise<void>;
  /** Drops expired entries (memory only). */
  sweep(): void;
}

/** "16/B374D848" (pg_lsn text) as a 64-bit number. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m?.[1] || !m[2]) throw new Error(`not a WAL position: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** Fixed-width hex, so that Redis (Lua) can compare two positions as strings. */
const hex = (lsn: bigint) => lsn.toString(16).padStart(16, '0');

export function memoryFences(ttlMs: number, now: () => number = performance.now.bind(performance)) {
  const fences = new Map<string, { lsn: bigint; until: number }>();
  const live = (caller: string) => {
    const f = fences.get(caller);
    if (f && f.until <= now()) fences.delete(caller);
    return f && f.until > now() ? f : undefined;
  };
  return {
    async get(caller: string) {
      return live(caller)?.lsn;
    },
    async raise(caller: string, lsn: bigint) {
      const f = live(caller);
      fences.set(caller, { lsn: f && f.lsn > lsn ? f.lsn : lsn, until: now() + ttlMs });
    },
    sweep() {
      const t = now();
      for (const [k, f] of fences) if (f.until <= t) fences.delete(k);
    },
    size: () => fences.size,
  } satisfies WriteFences & { size(): number };
}

// Atomic "raise, never lower" with the expiry refreshed; positions compare as fixed-width hex.
const RAISE = `local cur = redis.call('GET', KEYS[1])
if not cur or cur < ARGV[1] then cur = ARGV[1] end
redis.call('SET', KEYS[1], cur, 'PX', ARGV[2])
return 1`;

/**
 * Memory and Redis together: the local fence always (so this instance holds even when Redis
 * fails), Redis for the others. A read takes the larger of the two.
 */
export function sharedFences(
  redis: Redis,
  prefix: string,
  ttlMs: number,
  onRaiseFailed: (err: unknown) => void,
): WriteFences {
  const local = memoryFences(ttlMs);
  return {
    async get(caller) {
      const [mine, theirs] = await Promise.all([local.get(caller), redis.get(`${prefix}${caller}`)]);
      const shared = theirs ? BigInt(`0x${theirs}`) : undefined;
      if (mine === undefined) return shared;
      return shared !== undefined && shared > mine ? shared : mine;
    },
    async raise(caller, lsn) {
      await local.raise(caller, lsn);
      try {
        await redis.eval(RAISE, 1, `${prefix}${caller}`, hex(lsn), String(Math.ceil(ttlMs)));
      } catch (err) {
        onRaiseFailed(err);
      }
    },
    sweep: () => local.sweep(),
  };
}
