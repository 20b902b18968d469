import { type KeyObject, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventsConfig } from '../config.js';
import { openValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { toSealed } from '../db/sealed-columns.js';
import { HorizonProbe } from '../db/xid-horizon.js';
import type {
  AttemptRecord,
  ClaimedDelivery,
  EventRow,
  EventsRepository,
  FanOutMatch,
  FanOutOutcome,
} from './repository.js';
import { createSender } from './sender.js';
import { signatureHeader, signingKey } from './signing.js';

/**
 * Webhook delivery on a timer, in every instance (src/app.ts starts and stops it with the
 * app, like the audit jobs). Each round first fans the events written since the last round
 * out (writers only write the event): under a lease on the fan-out cursor it sends the fresh
 * deliveries and then inserts every delivery with its outcome (`leasedRun`); then it
 * claims due deliveries left for a claim in one statement (FOR UPDATE SKIP LOCKED plus a
 * lease, src/events/repository.ts `claim`), so instances never send the same delivery at
 * the same time, and sends them without waiting: a claim round never waits for a receiver,
 * a fan-out batch at most WEBHOOK_SETTLE_AFTER_MS. A subscription's batches run on their
 * own, PER_SUBSCRIPTION deliveries of it in flight here at most (a claim takes what is left
 * of that), so one slow receiver holds up only its own deliveries, never another
 * subscription's (nor request handling).
 */

/**
 * Deliveries claimed per instance at a time, per subscription batch, and requests in flight
 * per subscription batch. A batch is large (one claim and one record for many events) while
 * the requests of one subscription stay bounded.
 */
const MAX_IN_FLIGHT = 512;
const PER_SUBSCRIPTION = 256;
const CONCURRENCY = 32;
/** Time kept between the end of a batch's last request and its lease running out. */
const LEASE_MARGIN_MS = 5_000;
/** Polling while no subscription is enabled anywhere: from pollMs, doubling up to this. */
const IDLE_MAX_MS = 30_000;
/**
 * Events read per fan-out batch, and batches per claim round at most: a round's claim waits
 * for at most a few batches.
 */
const FAN_OUT_BATCH = 1000;
const FAN_OUT_PER_ROUND = 4;
/** Events read per fan-out batch at least, however little room there is to send. */
const FAN_OUT_MIN = 64;

/** A fan-out match and what became of it in its batch. */
interface Item {
  m: FanOutMatch;
  outcome: FanOutOutcome;
}

/** A fan-out lease held by this instance (`leasedRun`). */
interface Lease {
  /** When the lease's expiry was last set (taken or renewed), by this instance's clock, before the statement. */
  renewedAt: number;
  /** Whether a request of the lease has started (then the lease is never given back early). */
  sent: boolean;
}

/** A fan-out batch sending, until it settles (`leasedRun`). */
interface Sending {
  items: Item[];
  last: { xid: string; seq: string };
  /**
   * Per subscription and key of the batch: true once every delivery of it here was
   * delivered; false when one was not sent (queued, settled in flight) or failed.
   */
  keys: Map<string, Promise<boolean>>;
  /** Requests in flight, by item. */
  flights: Map<Item, Promise<AttemptRecord>>;
  /** Set when the batch settles (or its lease is lost): no request of it starts after. */
  settling: boolean;
  startedAt: number;
  /** Every key of the batch is being sent or done: the next batch may be read. */
  tail: Promise<void>;
  /** Every request the batch started has ended (or was not started). */
  done: Promise<void>;
}

const NOT_DELIVERED = Promise.resolve(false);

/** Whether `p` settles within `ms` (at once when `ms` is not positive and `p` has not). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(() => true),
      new Promise<boolean>((res) => {
        timer = setTimeout(() => res(false), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a change event looks like on the wire (webhooks and the live stream): never a value. */
export function eventPayload(e: EventRow) {
  return {
    type: e.type,
    id: e.id,
    timestamp: e.at.toISOString(),
    data: e.subscription_id
      ? { subscriptionId: e.subscription_id, actor: e.actor }
      : {
          key: e.key,
          environment: e.environment,
          version: e.version,
          etag: e.etag,
          actor: e.actor,
          auditId: e.audit_id,
        },
  };
}

/** Exponential backoff with jitter: base x 3^(n-1), capped, times 0.8..1.2. */
export function retryDelayMs(attempt: number, cfg: Pick<EventsConfig, 'retryBaseMs' | 'retryMaxMs'>): number {
  const raw = Math.min(cfg.retryBaseMs * 3 ** Math.max(0, attempt - 1), cfg.retryMaxMs);
  return Math.round(raw * (0.8 + Math.random() * 0.4));
}

export interface DispatcherDeps {
  db: Database;
  repo: EventsRepository;
  keyring: Keyring;
  log: Logger;
  config: EventsConfig;
}

export class Dispatcher {
  /**
   * Kept-alive connections, at most CONCURRENCY per origin (src/events/sender.ts: every
   * new connection is to a checked address; no redirects; bounded in time and bytes).
   */
  private readonly sender: ReturnType<typeof createSender>;
  /** A claim outlives any attempt: the request is cut at timeoutMs, the lease runs longer. */
  private readonly leaseMs: number;
  /** Batches in flight here, and deliveries in flight here per subscription. */
  private readonly running = new Set<Promise<void>>();
  private readonly busy = new Map<string, number>();
  private inFlight = 0;
  /** A claim round found no room (MAX_IN_FLIGHT): the next batch to end claims at once. */
  private starved = false;
  /** The fan-out stopped after its last batch of a round, a full one: another round at once. */
  private more = false;
  private claiming: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private jobsTimer: NodeJS.Timeout | undefined;
  private jobsRunning: Promise<unknown> = Promise.resolve();
  private stopped = true;
  readonly stats = { delivered: 0, failed: 0, latenciesMs: [] as number[] };
  /**
   * Opened signing keys per subscription, with the claim's tag of the generations that sign
   * (src/events/repository.ts `claim`): read and opened again only when the tag changes (a
   * rotation, a retirement), not once per batch.
   */
  private readonly keys = new Map<string, { tag: string; keys: KeyObject[] }>();
  /**
   * Request bodies of recent events: an event goes to every subscription that wants it
   * with the same body (its `timestamp` is the event's), serialized and encoded once; the
   * same bytes are signed and sent (undici sends a Buffer as it is).
   */
  private readonly bodies = new Map<string, Buffer>();
  /** Whether the last claim saw no enabled subscription, and the idle poll interval then. */
  private idleMs = 0;
  /** The fan-out running here, if one is: one at a time per instance. */
  private fanning: Promise<void> | undefined;
  /**
   * Which horizon the fan-out's next read takes (src/db/xid-horizon.ts): the server's oldest
   * running transaction while nothing old holds it back, the schema's writers from pg_locks
   * otherwise. The fan-out reads several times a second; most reads need no pg_locks scan.
   */
  private readonly horizon = new HorizonProbe();

  constructor(private readonly deps: DispatcherDeps) {
    const { config } = deps;
    const rules = { allowHttp: config.allowHttp, allowPrivate: config.allowPrivate };
    this.sender = createSender(rules, config.timeoutMs, CONCURRENCY);
    this.leaseMs = config.timeoutMs * 2 + 10_000;
  }

  private async signingKeys(subscriptionId: string, tag: string): Promise<KeyObject[]> {
    const { db, repo, keyring } = this.deps;
    const known = this.keys.get(subscriptionId);
    if (known && known.tag === tag) return known.keys;
    const rows = await repo.signingSecrets(db, subscriptionId);
    const opened = rows.map((r) =>
      signingKey(
        openValue(keyring, { secretId: subscriptionId, key: 'webhook', version: r.generation }, toSealed(r)),
      ),
    );
    // Forget subscriptions gone from the claims (deleted, disabled): the map stays small.
    if (this.keys.size > 1000) this.keys.clear();
    this.keys.set(subscriptionId, { tag, keys: opened });
    return opened;
  }

  private body(e: EventRow): Buffer {
    let b = this.bodies.get(e.id);
    if (b === undefined) {
      if (this.bodies.size >= MAX_IN_FLIGHT * 2) this.bodies.clear();
      b = Buffer.from(JSON.stringify(eventPayload(e)));
      this.bodies.set(e.id, b);
    }
    return b;
  }

  /** One attempt; its result is recorded with the rest of its batch. */
  private async deliver(d: ClaimedDelivery, secrets: readonly KeyObject[]): Promise<AttemptRecord> {
    const { config, log } = this.deps;
    const payload = this.body(d.event);
    const timestamp = Math.floor(Date.now() / 1000);
    const started = performance.now();
    const out = await this.sender.post(d.url, payload, [
      'content-type',
      'application/json',
      'user-agent',
      'secrets-service-webhooks',
      'webhook-id',
      d.event.id,
      'webhook-timestamp',
      String(timestamp),
      'webhook-signature',
      signatureHeader(secrets, d.event.id, timestamp, payload),
    ]);
    const latencyMs = Math.round(performance.now() - started);
    const ok = out.status !== null && out.status >= 200 && out.status < 300;
    const error = ok ? null : (out.error ?? `answered ${out.status}`);
    const retryMs = ok || d.attempts >= config.maxAttempts ? null : retryDelayMs(d.attempts, config);
    if (ok) {
      this.stats.delivered++;
      this.stats.latenciesMs.push(Date.now() - d.event.at.getTime());
      if (this.stats.latenciesMs.length > 100_000) this.stats.latenciesMs.splice(0, 50_000);
    } else {
      this.stats.failed++;
      log.warn(
        {
          webhook: d.subscription_id,
          delivery: d.id,
          attempt: d.attempts,
          status: out.status,
          error,
          retryMs,
        },
        'webhook delivery failed',
      );
    }
    return { id: d.id, attempt: d.attempts, ok, status: out.status, latencyMs, error, retryMs };
  }

  /**
   * A subscription's batch: its keys run side by side (at most CONCURRENCY requests at a
   * time), each key's deliveries one after another in event order. After a failure the
   * key's later deliveries are given back unattempted, so they wait behind its retry.
   */
  private async runBatch(subscriptionId: string, items: ClaimedDelivery[], claimedAt: number) {
    const { db, repo, log } = this.deps;
    try {
      const secrets = await this.signingKeys(subscriptionId, items[0]!.secrets_tag);
      const byKey = new Map<string, ClaimedDelivery[]>();
      for (const d of items) {
        const k = d.event.key ?? '';
        const list = byKey.get(k);
        if (list) list.push(d);
        else byKey.set(k, [d]);
      }
      const queues = [...byKey.values()];
      const results: AttemptRecord[] = [];
      const released: { id: string; attempt: number }[] = [];
      const worker = async () => {
        for (let queue = queues.shift(); queue; queue = queues.shift()) {
          for (let i = 0; i < queue.length; i++) {
            // Past the claim's lease another instance may claim the delivery: the rest go back.
            if (!this.endsInTime(claimedAt)) {
              for (const d of queue.slice(i)) released.push({ id: d.id, attempt: d.attempts });
              break;
            }
            const r = await this.deliver(queue[i]!, secrets);
            results.push(r);
            if (!r.ok) {
              for (const d of queue.slice(i + 1)) released.push({ id: d.id, attempt: d.attempts });
              break;
            }
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queues.length) }, worker));
      // One statement for the batch's attempts; if it fails, the claims' leases expire and
      // the deliveries are tried again (at least once).
      const failing = await repo.recordAttempts(db, results);
      await repo.release(db, released);
      await this.disableFailing(failing);
    } catch (err) {
      log.error(
        { webhook: subscriptionId, errCode: (err as { code?: unknown }).code },
        'webhook batch not recorded',
      );
    } finally {
      this.inFlight -= items.length;
    }
  }

  /**
   * Starts a subscription's batch (claimed, or leased by the fan-out). Several batches of
   * one subscription may run side by side: a key's later deliveries are never in a batch
   * while an earlier one is in flight (the claim's and the fan-out's order checks), and a
   * subscription's in-flight deliveries stay within PER_SUBSCRIPTION (a claim takes only
   * what is left of that room; a fan-out batch sends a subscription's fresh deliveries only
   * while it has room). `again`: claim once it ends (more are probably due).
   */
  private startBatch(sub: string, items: ClaimedDelivery[], claimedAt: number, again: boolean) {
    this.inFlight += items.length;
    this.hold(sub, items.length);
    const run = this.runBatch(sub, items, claimedAt).finally(() => {
      this.running.delete(run);
      this.hold(sub, -items.length);
      if (again || this.starved) {
        this.starved = false;
        this.nudge(true);
      }
    });
    this.running.add(run);
  }

  /**
   * Whether a request started now ends (at the latest, cut at timeoutMs) at least
   * LEASE_MARGIN_MS before a lease set at `leasedAt` (this instance's clock, taken before the
   * statement that set it) runs out: past it another instance may take the deliveries, and
   * it must never find one of ours still in flight. Claims and fan-out leases alike.
   */
  private endsInTime(leasedAt: number): boolean {
    return performance.now() - leasedAt + this.deps.config.timeoutMs <= this.leaseMs - LEASE_MARGIN_MS;
  }

  /** Counts `n` more (or, negative, fewer) deliveries of `sub` in flight here. */
  private hold(sub: string, n: number) {
    const left = (this.busy.get(sub) ?? 0) + n;
    if (left > 0) this.busy.set(sub, left);
    else this.busy.delete(sub);
  }

  private startAll(claimed: ClaimedDelivery[], claimedAt: number, fullAt: number) {
    const bySub = new Map<string, ClaimedDelivery[]>();
    for (const d of claimed) {
      const list = bySub.get(d.subscription_id) ?? [];
      list.push(d);
      bySub.set(d.subscription_id, list);
    }
    for (const [sub, items] of bySub) this.startBatch(sub, items, claimedAt, items.length >= fullAt);
  }

  /**
   * The fan-out that sends (src/events/repository.ts `takeFanOut`, `readFanOut`,
   * `settleFanOut`): the cursor is taken by a lease, and batch after batch is read behind the
   * horizon, its fresh deliveries sent at once (each key's in event order, one at a time),
   * and then one statement inserts every delivery of the batch with its outcome and moves the
   * cursor past it, if the lease still holds it. A delivered event is then one row, written
   * once. A failed one is inserted pending with its retry due (the claim's path from there),
   * and so is each later event of its key (not sent).
   *
   * Batches overlap: once every key of a batch is being sent (its last requests run), the
   * next batch is read and starts sending, and the one before settles, renewing the lease.
   * So the receiver is kept busy through a batch's tail, its settle and the next read, and an
   * event waits for at most about one batch's requests, not for the slowest key of the batch
   * before. A key of the next batch that the batch before is still sending waits for that
   * batch's outcome of it (`Sending.keys`): sent after a delivered one, left queued otherwise
   * (inserted pending after the earlier one's row, for a claim). At most two batches are open,
   * and they settle in order.
   *
   * After WEBHOOK_SETTLE_AFTER_MS a batch settles with what it has: requests still in flight are
   * inserted leased to this instance and recorded when they end. A request starts only if it
   * ends (cut at timeoutMs) well before the lease could run out, so an instance that takes the
   * cursor after it has run out (this one died, or could not settle) never finds one of ours
   * in flight; it sends the unsettled batches again (same webhook-id: at least once). Returns
   * the events read and whether the last batch was full, or undefined when another instance
   * holds the cursor.
   */
  private async leasedRun(batches: number): Promise<{ read: number; full: boolean } | undefined> {
    const { db, repo, config } = this.deps;
    const token = randomUUID();
    const lease: Lease = { renewedAt: performance.now(), sent: false };
    const cur = await repo.takeFanOut(db, token, this.leaseMs, this.horizon.readsLocks);
    if (!cur) return undefined;
    /** Batches sending and not yet settled, oldest first (at most two). */
    const open: Sending[] = [];
    let read = 0;
    let full = false;
    try {
      if (!cur.subs) {
        const { horizon, heldBack } = await repo.readFanOut(db, cur, 0);
        this.horizon.saw(heldBack);
        await repo.skipFanOut(db, horizon, token);
        return { read: 0, full: false };
      }
      let at: { xid: string; seq: string } = cur;
      for (let i = 0; i < batches && !this.stopped; i++) {
        // A batch reads about as many events as there is room to send; with none, it waits.
        const free = MAX_IN_FLIGHT - this.inFlight;
        if (free <= 0) {
          this.starved = true;
          full = false;
          break;
        }
        const limit = Math.min(FAN_OUT_BATCH, Math.max(FAN_OUT_MIN, free));
        const writers = i === 0 ? cur : await this.horizon.writers(db);
        const batch = await repo.readFanOut(db, { ...at, xmax0: writers.xmax0, xids: writers.xids }, limit);
        this.horizon.saw(batch.heldBack);
        full = false;
        if (batch.last === null) break;
        read += batch.read;
        at = batch.last;
        const sending = await this.startSending(batch.matches, batch.last, open.at(-1), lease);
        open.push(sending);
        if (open.length > 1) {
          if (!(await this.settle(open[0]!, token, true, lease))) return this.lost(open, read);
          open.shift();
        }
        full = batch.read >= limit;
        if (!full) break;
        // The next batch is read once this one's last keys are being sent; a batch whose keys
        // are not all under way by WEBHOOK_SETTLE_AFTER_MS (a slow receiver) settles first instead,
        // and another round reads on (its keys' later events then wait for a claim).
        if (!(await within(sending.tail, config.settleAfterMs - (performance.now() - sending.startedAt))))
          break;
      }
      if (open.length === 0) {
        await repo.releaseFanOut(db, token);
        return { read, full: false };
      }
      while (open.length > 0) {
        if (!(await this.settle(open[0]!, token, open.length > 1, lease))) return this.lost(open, read);
        open.shift();
      }
      return { read, full };
    } catch (err) {
      for (const s of open) s.settling = true;
      // Nothing sent yet: the cursor can go at once. Otherwise the lease runs out first, so
      // no request of this lease can still be in flight when another instance sends it again.
      if (!lease.sent) await repo.releaseFanOut(db, token).catch(() => undefined);
      throw err;
    }
  }

  /** The lease ran out and another instance took the cursor: it sends these batches again. */
  private lost(open: Sending[], read: number) {
    for (const s of open) s.settling = true;
    this.deps.log.warn(
      'webhook fan-out lease lost before its batch was recorded; another instance sends it again',
    );
    return { read, full: false };
  }

  /**
   * Starts sending a batch's fresh deliveries: a worker per key at a time (at most
   * CONCURRENCY), each key's in event order, after `before`'s outcome for the key (the batch
   * before, still open) if it has one.
   */
  private async startSending(
    matches: FanOutMatch[],
    last: { xid: string; seq: string },
    before: Sending | undefined,
    lease: Lease,
  ): Promise<Sending> {
    const items: Item[] = matches.map((m) => ({ m, outcome: { state: 'queued' } }));
    const secrets = new Map<string, readonly KeyObject[]>();
    const queues = new Map<string, Item[]>();
    for (const i of items) {
      const sub = i.m.subscription_id;
      const k = `${sub}\0${i.m.event.key ?? ''}`;
      const q = queues.get(k);
      if (q) q.push(i);
      else queues.set(k, [i]);
      if (i.m.fresh && !secrets.has(sub)) secrets.set(sub, await this.signingKeys(sub, i.m.secrets_tag));
    }
    // A fresh delivery's subscription is enabled: the poll keeps its normal pace.
    if (secrets.size > 0) this.idleMs = 0;
    const keys = new Map<string, Promise<boolean>>();
    const todo: { key: string; queue: Item[]; ok: (delivered: boolean) => void }[] = [];
    for (const [key, queue] of queues) {
      if (!queue[0]!.m.fresh) {
        keys.set(key, NOT_DELIVERED);
        continue;
      }
      let ok!: (delivered: boolean) => void;
      keys.set(
        key,
        new Promise((res) => {
          ok = res;
        }),
      );
      todo.push({ key, queue, ok });
    }
    let tailed!: () => void;
    const tail = new Promise<void>((res) => {
      tailed = res;
    });
    const s: Sending = {
      items,
      last,
      keys,
      flights: new Map(),
      settling: false,
      startedAt: performance.now(),
      tail,
      done: Promise.resolve(),
    };
    const runKey = async ({ key, queue }: (typeof todo)[number]): Promise<boolean> => {
      const earlier = before?.keys.get(key);
      if (earlier && !(await earlier)) return false;
      for (const i of queue) {
        if (!i.m.fresh || s.settling || !this.endsInTime(lease.renewedAt)) return false;
        // A subscription with PER_SUBSCRIPTION in flight here (a slow receiver) gets no
        // more: the rest of this key is inserted pending, for a claim (which takes only what
        // is left of its room), so it cannot take every other subscription's room.
        const sub = i.m.subscription_id;
        if ((this.busy.get(sub) ?? 0) >= PER_SUBSCRIPTION) return false;
        this.hold(sub, 1);
        this.inFlight++;
        lease.sent = true;
        i.outcome = { state: 'flight' };
        const p = this.deliver(this.asDelivery(i.m), secrets.get(sub)!).finally(() => {
          this.hold(sub, -1);
          this.inFlight--;
        });
        s.flights.set(i, p);
        const r = await p;
        // Settled meanwhile: the delivery is inserted in flight, and recorded from there.
        if (s.settling) return false;
        s.flights.delete(i);
        i.outcome = r.ok
          ? { state: 'delivered', status: r.status, latencyMs: r.latencyMs, error: null, retryMs: null }
          : {
              state: r.retryMs === null ? 'failed' : 'retry',
              status: r.status,
              latencyMs: r.latencyMs,
              error: r.error,
              retryMs: r.retryMs,
            };
        if (!r.ok) return false;
      }
      return true;
    };
    const worker = async () => {
      for (let next = todo.shift(); next; next = todo.shift()) {
        if (todo.length === 0) tailed();
        let delivered = false;
        try {
          delivered = await runKey(next);
        } finally {
          next.ok(delivered);
        }
      }
    };
    s.done = Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker)).then(() =>
      tailed(),
    );
    if (todo.length === 0) tailed();
    return s;
  }

  /**
   * Settles a batch once its requests have ended or WEBHOOK_SETTLE_AFTER_MS after it started: one
   * statement (`settleFanOut`), which also ends the lease or (`keep`) renews it. False when
   * the lease no longer held the cursor (nothing was written).
   */
  private async settle(s: Sending, token: string, keep: boolean, lease: Lease): Promise<boolean> {
    const { db, repo, config } = this.deps;
    await within(s.done, config.settleAfterMs - (performance.now() - s.startedAt));
    s.settling = true;
    const flying = [...s.flights];
    const renewing = performance.now();
    const settled = await repo.settleFanOut(
      db,
      token,
      s.last,
      s.items.map((i) => ({
        sub: i.m.subscription_id,
        seq: i.m.event.seq,
        key: i.m.event.key ?? '',
        outcome: i.outcome,
      })),
      this.leaseMs,
      keep,
    );
    if (!settled.held) return false;
    if (keep) lease.renewedAt = renewing;
    if (flying.length > 0) this.recordLater(flying, settled.flight);
    if (this.starved) {
      this.starved = false;
      this.nudge(true);
    }
    await this.disableFailing(settled.failing);
    return true;
  }

  /** A fan-out match as a delivery to send (attempt 1; its row does not exist yet). */
  private asDelivery(m: FanOutMatch): ClaimedDelivery {
    return {
      id: '',
      subscription_id: m.subscription_id,
      attempts: 1,
      url: m.url,
      secrets_tag: m.secrets_tag,
      event: m.event,
    };
  }

  /**
   * Requests a settled fan-out batch left in flight: their rows exist, pending and leased to
   * this instance at attempt 1 (`settleFanOut` returns "id subscription seq"); their outcome
   * is recorded as a claimed batch's is.
   */
  private recordLater(flying: [Item, Promise<AttemptRecord>][], ids: string[]) {
    const { db, repo, log } = this.deps;
    const idOf = new Map<string, string>();
    for (const x of ids) {
      const [id, sub, seq] = x.split(' ');
      idOf.set(`${sub} ${seq}`, id!);
    }
    const run = (async () => {
      try {
        const results = [];
        for (const [i, p] of flying) {
          const r = await p;
          const id = idOf.get(`${i.m.subscription_id} ${i.m.event.seq}`);
          if (id !== undefined) results.push({ ...r, id });
        }
        await this.disableFailing(await repo.recordAttempts(db, results));
      } catch (err) {
        log.error({ errCode: (err as { code?: unknown }).code }, 'webhook batch not recorded');
      }
    })().finally(() => {
      this.running.delete(run);
      if (this.starved) {
        this.starved = false;
        this.nudge(true);
      }
    });
    this.running.add(run);
  }

  private async disableFailing(subs: readonly string[]) {
    const { db, repo, log, config } = this.deps;
    for (const sub of subs)
      if (await repo.disableIfFailing(db, sub, config.disableMinFailures, config.disableAfterMs))
        log.error({ webhook: sub }, 'webhook subscription disabled after a long run of failures');
  }

  /**
   * Fans out the events written since the last fan-out (by any instance), batch after batch,
   * until it has caught up, another instance holds the cursor, or `batches` batches ran (then
   * another round follows at once). `send`: batches that send (`leasedRun`); otherwise
   * they only queue, each in a short transaction (src/events/repository.ts `fanOut`).
   */
  private async fanOutBatches(batches: number, send: boolean) {
    const { db, repo, log } = this.deps;
    try {
      if (send) {
        if (this.stopped) return;
        if ((await this.leasedRun(batches))?.full) this.more = true;
        return;
      }
      for (let i = 0; i < batches; i++) {
        const out = await db.transaction((tx) => repo.fanOut(tx, FAN_OUT_BATCH));
        if (out === undefined || out.read < FAN_OUT_BATCH) return;
      }
    } catch (err) {
      log.warn(
        { errCode: (err as { code?: unknown }).code },
        'webhook fan-out failed; retrying on the next round',
      );
    }
  }

  private fanOutOnce(): Promise<void> {
    this.fanning ??= this.fanOutBatches(FAN_OUT_PER_ROUND, true).finally(() => {
      this.fanning = undefined;
      // A full last batch: another round at once (or when the running claim ends).
      if (this.more && !this.claiming) {
        this.more = false;
        this.nudge(true);
      }
    });
    return this.fanning;
  }

  /**
   * A claim round. A poll fans out first, so the claim sees the events written since the
   * last one. A round that follows a full batch claims at once (the fan-out runs ahead of
   * the claims, and more deliveries are probably queued) and fans out beside it, so the
   * fan-out's statements are not on the delivery's critical path under a backlog.
   */
  private async claimRound(afterFullBatch = false) {
    const { db, repo, log, config } = this.deps;
    if (this.stopped) return;
    if (afterFullBatch) void this.fanOutOnce();
    else await this.fanOutOnce();
    const free = MAX_IN_FLIGHT - this.inFlight;
    if (this.stopped) return;
    if (free <= 0) {
      this.starved = true;
      return;
    }
    let claimed: ClaimedDelivery[];
    const claimedAt = performance.now();
    const perSub = Math.min(PER_SUBSCRIPTION, free);
    try {
      const got = await repo.claim(db, {
        busy: this.busy,
        perSub,
        limit: free,
        leaseMs: this.leaseMs,
      });
      claimed = got.claimed;
      this.idleMs = got.anySubscription ? 0 : Math.min(IDLE_MAX_MS, Math.max(config.pollMs, this.idleMs * 2));
    } catch (err) {
      log.warn(
        { errCode: (err as { code?: unknown }).code },
        'webhook claim failed; retrying on the next round',
      );
      return;
    }
    // A full batch: more are probably due, claim again as soon as it ends. Otherwise the
    // next poll claims what arrived meanwhile: under a steady stream of writes a batch
    // then holds a poll interval's events, so the claim, record and their round trips
    // are shared by many events instead of a few (the delay grows by at most pollMs).
    this.startAll(claimed, claimedAt, perSub);
  }

  /** Claims now (unless a claim is running): called by the timer and when a batch ends. */
  private nudge(afterFullBatch = false) {
    if (this.stopped || this.claiming) return;
    this.claiming = this.claimRound(afterFullBatch).finally(() => {
      this.claiming = undefined;
      if (this.more) {
        this.more = false;
        this.nudge(true);
      }
    });
  }

  /**
   * The poll: every pollMs while a subscription is enabled somewhere; while none is, the
   * interval doubles up to IDLE_MAX_MS (a subscription created or enabled through this
   * instance wakes it at once: `wake`; another instance's is seen at the next poll).
   */
  private schedule() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.nudge();
        void Promise.resolve(this.claiming).finally(() => this.schedule());
      },
      Math.max(this.deps.config.pollMs, this.idleMs),
    );
    this.timer.unref();
  }

  /** secret.expiring notices and pruning of old events. */
  async sweep() {
    const { db, repo, log, config } = this.deps;
    try {
      await repo.noteExpiring(db, config.expiringBeforeSeconds);
      await repo.prune(db, config.retentionDays);
    } catch (err) {
      log.warn(
        { errCode: (err as { code?: unknown }).code },
        'event sweep failed; retrying on the next round',
      );
    }
  }

  /** Queues the deliveries of every event written so far (tests; each claim round fans out first). */
  fanOut() {
    return this.fanOutBatches(Number.MAX_SAFE_INTEGER, false);
  }

  /** The poll's interval now: pollMs, or longer while idle (tests read it). */
  get pollIntervalMs() {
    return Math.max(this.deps.config.pollMs, this.idleMs);
  }

  /**
   * One claim round, awaited (tests and benchmarks); the batches it starts run on. Its fan-out
   * reads take the schema's writers (`HorizonProbe.exactly`), so it sends every event committed
   * before it that no transaction of this schema holds back, whatever else runs on the server.
   */
  async deliverNow() {
    const was = this.stopped;
    this.stopped = false;
    await this.horizon.exactly(() => this.claimRound());
    this.stopped = was;
  }

  /** Waits for every batch in flight here. */
  async idle() {
    while (this.running.size > 0 || this.claiming || this.fanning)
      await Promise.all([...this.running, this.claiming, this.fanning]);
  }

  /** A subscription was created or enabled here: poll at the normal pace again, now. */
  wake() {
    this.idleMs = 0;
    if (this.timer && !this.stopped) {
      this.nudge();
      void Promise.resolve(this.claiming).finally(() => this.schedule());
    }
  }

  start() {
    if (this.deps.config.pollMs <= 0) return;
    this.stopped = false;
    this.schedule();
    this.jobsRunning = this.sweep();
    this.jobsTimer = setInterval(() => {
      this.jobsRunning = this.sweep();
    }, 60_000);
    this.jobsTimer.unref();
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.jobsTimer);
    await this.claiming;
    await this.fanning;
    while (this.running.size > 0) await Promise.all([...this.running]);
    await this.jobsRunning;
    await this.sender.close();
  }
}
