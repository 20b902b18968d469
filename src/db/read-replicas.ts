import type { Logger } from 'pino';
import type { Database, Queryable, Transaction } from './database.js';
import { parseLsn, type WriteFences } from './write-fences.js';

/**
 * Read routing (DATABASE_READ_URL): which database answers a caller's value read or list.
 *
 * A poller samples the primary's WAL position (pg_current_wal_lsn) and then each replica's
 * replay position, every quarter of the lag bound. A primary sample taken at time t holds
 * every commit acknowledged before t; once a replica's replay position reaches it, the
 * replica holds them too. A replica's `freshAt` is the newest such t: it is at most
 * (now - freshAt) behind, and that is what the bound DATABASE_READ_MAX_LAG_MS is checked
 * against at every read. Over the bound, paused (pg_wal_replay_pause), promoted (no longer
 * in recovery), unreachable or erroring: it serves nothing and the primary answers.
 *
 * Read-your-own-writes: a write's transaction reports the WAL position right after its
 * COMMIT (src/db/postgres.ts), which raises the caller's fence (src/db/write-fences.ts); a
 * replica serves the caller only if its polled replay position (a lower bound of its current
 * one) is at or past the fence. Hand-written: pg has no replica routing, and PgBouncer and
 * pgpool route by statement, not by caller.
 */

export interface ReadTarget {
  db: Queryable;
  /** The replica's name (host:port), undefined for the primary. */
  replica: string | undefined;
}

export type ReplicaStatus = 'serving' | 'lagging' | 'paused' | 'not_in_recovery' | 'down' | 'unknown';

export interface ReplicaState {
  name: string;
  status: ReplicaStatus;
  /**
   * How long it had been behind at the last poll, in ms (0: caught up); null: unknown.
   * Dated by the poller's samples, so it can read up to one poll interval low; the routing
   * decision uses the conservative side (time since the newest sample it has replayed).
   */
  lagMs: number | null;
  /** WAL bytes not yet replayed at the last poll; null: unknown. */
  lagBytes: number | null;
  /** Reads it served since start. */
  reads: number;
}

export interface Replica {
  name: string;
  db: Database;
}

interface Tracked extends Replica {
  polled: boolean;
  paused: boolean;
  inRecovery: boolean;
  down: boolean;
  replay: bigint;
  freshAt: number;
  lagMs: number | null;
  lagBytes: number | null;
  reads: number;
}

export interface ReadRoutingOptions {
  primary: Database;
  replicas: Replica[];
  maxLagMs: number;
  fences: WriteFences;
  log: Logger;
  now?: () => number;
}

/** The replica's name for logs, /ready and metrics: host:port only (never the credentials). */
export function replicaName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return 'replica';
  }
}

const REPLICA_POLL = `SELECT pg_is_in_recovery() AS in_recovery,
  pg_last_wal_replay_lsn()::text AS replay,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused`;

/** Routes each caller's reads to a fresh enough replica, or to the primary. */
export class ReadRouting {
  readonly enabled: boolean;
  readonly pollMs: number;
  private readonly clock: () => number;
  private readonly tracked: Tracked[];
  /** Primary samples (send time, WAL position), oldest first. */
  private samples: { t: number; lsn: bigint }[] = [];
  private primaryReads = 0;
  private overrules = 0;
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private readonly primaryTarget: ReadTarget;

  constructor(private readonly deps: ReadRoutingOptions) {
    this.clock = deps.now ?? performance.now.bind(performance);
    this.pollMs = Math.max(25, Math.min(1000, Math.floor(deps.maxLagMs / 4)));
    this.tracked = deps.replicas.map((r) => ({
      ...r,
      polled: false,
      paused: false,
      inRecovery: false,
      down: false,
      replay: 0n,
      freshAt: Number.NEGATIVE_INFINITY,
      lagMs: null,
      lagBytes: null,
      reads: 0,
    }));
    this.enabled = this.tracked.length > 0;
    this.primaryTarget = { db: deps.primary, replica: undefined };
  }

  /** Starts the poller (the first round now); returns once that round is done. */
  async start(): Promise<void> {
    if (this.tracked.length === 0 || this.timer) return;
    this.polling = this.poll();
    await this.polling;
    this.timer = setInterval(() => {
      this.polling = this.polling.then(() => this.poll());
    }, this.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
    await Promise.all(this.tracked.map((r) => r.db.close().catch(() => {})));
  }

  /**
   * Where the caller's read goes: a usable replica that has replayed the caller's fence
   * (round robin), else the primary. A fence that cannot be read sends it to the primary.
   */
  async route(caller: string): Promise<ReadTarget> {
    if (this.tracked.length === 0) return this.primaryTarget;
    const t = this.clock();
    const candidates = this.tracked.filter((r) => this.usable(r, t));
    if (candidates.length === 0) return this.primaryTarget;
    let fence: bigint | undefined;
    try {
      fence = await this.deps.fences.get(caller);
    } catch {
      return this.primaryTarget;
    }
    const ok = fence === undefined ? candidates : candidates.filter((r) => r.replay >= fence);
    if (ok.length === 0) return this.primaryTarget;
    this.next = (this.next + 1) % ok.length;
    const r = ok[this.next]!;
    return { db: r.db, replica: r.name };
  }

  /** Counts a read by the pool that served it. */
  served(target: ReadTarget) {
    if (target.replica === undefined) this.primaryReads += 1;
    else {
      const r = this.tracked.find((x) => x.name === target.replica);
      if (r) r.reads += 1;
    }
  }

  /**
   * A replica's answer was contradicted by the primary's check (src/audit/writer.ts): the
   * primary answers again, and that counts as a primary read.
   */
  overruled() {
    this.overrules += 1;
    this.primaryReads += 1;
  }

  /** A replica's query failed: it serves nothing until a poll finds it well again. */
  failed(target: ReadTarget, err: unknown) {
    const r = this.tracked.find((x) => x.name === target.replica);
    if (r) this.markDown(r, err);
  }

  /**
   * A write on the primary that raises the caller's fence once committed (when replicas
   * are configured; otherwise a plain transaction). Resolves after the fence is stored.
   */
  async transaction<T>(caller: string, fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const { primary, fences } = this.deps;
    if (this.tracked.length === 0) return primary.transaction(fn);
    let lsn: string | undefined;
    const result = await primary.transaction(fn, {
      onCommitLsn: (l) => {
        lsn = l;
      },
    });
    if (lsn) await fences.raise(caller, parseLsn(lsn));
    return result;
  }

  /** Whether writes must go through transaction() to raise fences (replicas configured). */
  fencesWrites(): boolean {
    return this.tracked.length > 0;
  }

  /** For /ready and /metrics: no URL, no credentials, no data. */
  state(): { primaryReads: number; overruled: number; replicas: ReplicaState[] } {
    return {
      primaryReads: this.primaryReads,
      overruled: this.overrules,
      replicas: this.tracked.map((r) => ({
        name: r.name,
        status: this.statusOf(r),
        lagMs: r.lagMs,
        lagBytes: r.lagBytes,
        reads: r.reads,
      })),
    };
  }

  private usable(r: Tracked, t: number) {
    return r.polled && !r.down && !r.paused && r.inRecovery && t - r.freshAt <= this.deps.maxLagMs;
  }

  private statusOf(r: Tracked): ReplicaStatus {
    if (!r.polled) return r.down ? 'down' : 'unknown';
    if (r.down) return 'down';
    if (!r.inRecovery) return 'not_in_recovery';
    if (r.paused) return 'paused';
    return this.clock() - r.freshAt <= this.deps.maxLagMs ? 'serving' : 'lagging';
  }

  private async pollReplica(r: Tracked, latest: { t: number; lsn: bigint }) {
    try {
      const [row] = await r.db.query<{ in_recovery: boolean; replay: string | null; paused: boolean }>(
        REPLICA_POLL,
      );
      if (!row) throw new Error('no row');
      const wasServing = this.statusOf(r) === 'serving';
      r.polled = true;
      r.down = false;
      r.inRecovery = row.in_recovery;
      r.paused = row.paused;
      const replay = row.replay ? parseLsn(row.replay) : 0n;
      // Replay went backwards: another server (re-cloned, restored) answers at this address.
      // Nothing earlier said about it holds: its freshness is worked out afresh.
      if (replay < r.replay) r.freshAt = Number.NEGATIVE_INFINITY;
      r.replay = replay;
      // The newest primary sample the replica has replayed, and the oldest it has not.
      let fresh: number | undefined;
      let behindSince: number | undefined;
      for (const s of this.samples) {
        if (s.lsn <= r.replay) fresh = s.t;
        else behindSince ??= s.t;
      }
      if (fresh !== undefined && fresh > r.freshAt) r.freshAt = fresh;
      r.lagBytes = latest.lsn > r.replay ? Number(latest.lsn - r.replay) : 0;
      r.lagMs = behindSince === undefined ? 0 : Math.round(this.clock() - behindSince);
      const serving = this.statusOf(r) === 'serving';
      if (serving !== wasServing)
        this.deps.log.info({ replica: r.name, status: this.statusOf(r) }, 'read replica status');
    } catch (err) {
      this.markDown(r, err);
    }
  }

  private markDown(r: Tracked, err: unknown) {
    if (!r.down) {
      this.deps.log.warn(
        { replica: r.name, errName: (err as Error)?.name, errCode: (err as { code?: unknown })?.code },
        'read replica unavailable; the primary serves its reads',
      );
    }
    r.down = true;
    r.lagMs = null;
    r.lagBytes = null;
  }

  private async poll() {
    const { primary, maxLagMs, fences } = this.deps;
    const t = this.clock();
    let lsn: bigint;
    try {
      const [row] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      lsn = parseLsn(row!.lsn);
    } catch {
      // Without the primary's position no replica's lag is known; they age past the bound.
      return;
    }
    const latest = { t, lsn };
    this.samples.push(latest);
    await Promise.all(this.tracked.map((r) => this.pollReplica(r, latest)));
    // Keep what an unreplayed position still needs to be dated, within a bounded window.
    const keepFrom = Math.min(...this.tracked.map((r) => (r.down ? t : r.freshAt)), t) - maxLagMs;
    this.samples = this.samples
      .filter((s, i) => s.t >= keepFrom || i === this.samples.length - 1)
      .slice(-10_000);
    fences.sweep();
  }
}
