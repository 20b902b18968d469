import type { Logger } from 'pino';
import type { AuditEntry } from './entry.js';

/**
 * Refusals answered without an audit row of their own, accounted for in summary rows.
 *
 * Past a rate limit, a request is answered 429 before any work (REFUSAL_RATE_LIMIT: the
 * caller's requests after the one that crossed the limit; AUTH_FAILURE_RATE_LIMIT and
 * LOGIN_RATE_LIMIT: every failed attempt while the address is blocked). One row each would
 * let a flood write one row per request (what the limits are there to prevent), none would
 * let it vanish from the trail. So each instance counts them here, in memory, per limit and
 * per who was limited (the identity, or the client address for the per-address limits), and
 * every `intervalMs` (and when the app closes) writes ONE row per entry through the normal
 * audit writer, so the row is sealed and chained like any other:
 *
 *   action `refusals.suppressed`, outcome `rate_limited`, actor the identity (`anonymous`
 *   for the per-address limits), client_ip the address (null when the identity came from
 *   several), version the number of refusals the row stands for, key
 *   `<LIMIT> <first>/<last>` (the limit's setting and the ISO times of the first and last
 *   refusal counted).
 *
 * Summing `version` over these rows, plus one row per refusal that left its own, gives every
 * refusal sent. Memory is bounded: at most `maxTracked` entries; refusals of anyone beyond
 * them are counted in one overflow entry per limit (actor `system:rate-limits`, no address).
 * Nothing a caller sent is stored beyond its identity and address, which the audit
 * repository records escaped and bounded (src/storable-text.ts) like every row's.
 */

/** The actor of the overflow entry: refusals of callers past `maxTracked`. */
export const OVERFLOW_ACTOR = 'system:rate-limits';
/** The `who` of the overflow entries (no identity or address is empty). */
const OVERFLOW = '';
/** audit_log.version is a 32-bit integer. */
const MAX_COUNT = 2_147_483_647;

interface Tally {
  /** Who the limit counted: the identity or the address. */
  who: string;
  /** The setting of the limit that answered (which limits leave no row: src/http/rate-limits.ts). */
  limit: string;
  actor: string;
  clientIp: string | null;
  count: number;
  first: number;
  last: number;
}

export interface SuppressedRefusalsOptions {
  /** Writes the summary rows (AuditWriter.record): settles once they are committed. */
  record: (rows: AuditEntry[]) => Promise<unknown>;
  log: Logger;
  /** How often the summary rows are written (0: only on flush, i.e. when the app closes). */
  intervalMs: number;
  /** Entries kept before refusals go to the overflow entry of their limit. */
  maxTracked?: number;
  now?: () => number;
}

export class SuppressedRefusals {
  private tallies = new Map<string, Tally>();
  private readonly record: SuppressedRefusalsOptions['record'];
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** The flush in progress (flushes run one after another). */
  private flushing: Promise<void> = Promise.resolve();

  constructor(opts: SuppressedRefusalsOptions) {
    this.record = opts.record;
    this.log = opts.log;
    this.intervalMs = opts.intervalMs;
    this.maxTracked = opts.maxTracked ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Counts `n` refusals answered without a row. `by`: what the limit counts, so one entry
   * per identity (its address kept while it is always the same) or one per address.
   */
  note(limit: string, by: 'identity' | 'address', actor: string, clientIp: string, n = 1): void {
    this.add(limit, by === 'identity' ? actor : clientIp, actor, clientIp, n, this.now(), this.now());
  }

  private add(
    limit: string,
    who: string,
    actor: string,
    clientIp: string | null,
    n: number,
    first: number,
    last: number,
  ): void {
    let t = this.tallies.get(`${limit}\u0000${who}`);
    if (!t && this.tallies.size >= this.maxTracked && who !== OVERFLOW) {
      who = OVERFLOW;
      t = this.tallies.get(`${limit}\u0000${who}`);
      actor = OVERFLOW_ACTOR;
      clientIp = null;
    }
    if (!t) {
      // The overflow entries may take the map one per limit past maxTracked: still bounded.
      this.tallies.set(`${limit}\u0000${who}`, { who, limit, actor, clientIp, count: n, first, last });
      return;
    }
    t.count = Math.min(MAX_COUNT, t.count + n);
    t.first = Math.min(t.first, first);
    t.last = Math.max(t.last, last);
    if (t.actor !== actor) t.actor = OVERFLOW_ACTOR;
    if (t.clientIp !== clientIp) t.clientIp = null;
  }

  /** Entries counted and not yet written (for tests and metrics). */
  pending(): number {
    let n = 0;
    for (const t of this.tallies.values()) n += t.count;
    return n;
  }

  /**
   * Writes one row per entry counted so far and starts counting afresh. A write that fails
   * (the database is down) puts its counts back, to be written with the next window's.
   */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.writeOut());
    return this.flushing;
  }

  private async writeOut(): Promise<void> {
    if (this.tallies.size === 0) return;
    const taken = [...this.tallies.values()];
    this.tallies = new Map();
    const rows = taken.map(
      (t): AuditEntry => ({
        actor: t.actor,
        action: 'refusals.suppressed',
        key: `${t.limit} ${new Date(t.first).toISOString()}/${new Date(t.last).toISOString()}`,
        version: t.count,
        outcome: 'rate_limited',
        requestId: null,
        clientIp: t.clientIp,
        clientRequestId: false,
        environment: null,
      }),
    );
    try {
      await this.record(rows);
    } catch (err) {
      const count = taken.reduce((s, t) => s + t.count, 0);
      this.log.error(
        { errCode: (err as { code?: unknown }).code, rows: rows.length, refusals: count },
        'summary of rate-limited refusals could not be written; kept for the next window',
      );
      for (const t of taken) this.add(t.limit, t.who, t.actor, t.clientIp, t.count, t.first, t.last);
    }
  }

  /** Writes the summary every intervalMs (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left (the app closing). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
