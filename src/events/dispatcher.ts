import { type KeyObject, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventsConfig } from '../config.js';
import { openValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { toSealed } from '../db/sealed-columns.js';
import type {
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
 * deliveries and then inserts every delivery with its outcome (`leasedBatch`); then it
 * claims due deliveries left for a claim in one statement (FOR UPDATE SKIP LOCKED plus a
 * lease, src/events/repository.ts `claim`), so instances never send the same delivery at
 * the same time, and sends them without waiting: a claim round never waits for a receiver,
 * a fan-out batch at most SETTLE_AFTER_MS. A subscription's batches run on their
 * own, about PER_SUBSCRIPTION deliveries of it in flight here at most (a claim skips it beyond),
 * so one slow receiver holds up only its own deliveries, never another subscription's (nor
 * request handling).
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
/**
 * How long a fan-out batch holds the shared cursor for its requests: then the deliveries
 * still in flight are inserted pending and leased to this instance (their outcome recorded
 * as a claim's would be), those not yet sent pending for a claim, and the cursor moves on. A
 * slow receiver holds up every subscription's fresh events for at most this long.
 */
const SETTLE_AFTER_MS = 1_000;
/** Events read per fan-out batch at least, however little room there is to send. */
const FAN_OUT_MIN = 64;

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

export function createDispatcher({ db, repo, keyring, log, config }: DispatcherDeps) {
  const rules = { allowHttp: config.allowHttp, allowPrivate: config.allowPrivate };
  // Kept-alive connections, at most CONCURRENCY per origin (src/events/sender.ts: every
  // new connection is to a checked address; no redirects; bounded in time and bytes).
  const sender = createSender(rules, config.timeoutMs, CONCURRENCY);
  // A claim outlives any attempt: the request is cut at timeoutMs, the lease runs longer.
  const leaseMs = config.timeoutMs * 2 + 10_000;
  /** Batches in flight here, and deliveries in flight here per subscription. */
  const running = new Set<Promise<void>>();
  const busy = new Map<string, number>();
  let inFlight = 0;
  /** A claim round found no room (MAX_IN_FLIGHT): the next batch to end claims at once. */
  let starved = false;
  /** The fan-out stopped after its last batch of a round, a full one: another round at once. */
  let more = false;
  let claiming: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let jobsTimer: NodeJS.Timeout | undefined;
  let jobsRunning: Promise<unknown> = Promise.resolve();
  let stopped = true;
  const stats = { delivered: 0, failed: 0, latenciesMs: [] as number[] };

  /**
   * Opened signing keys per subscription, with the claim's tag of the generations that sign
   * (src/events/repository.ts `claim`): read and opened again only when the tag changes (a
   * rotation, a retirement), not once per batch.
   */
  const keys = new Map<string, { tag: string; keys: KeyObject[] }>();

  async function signingKeys(subscriptionId: string, tag: string): Promise<KeyObject[]> {
    const known = keys.get(subscriptionId);
    if (known && known.tag === tag) return known.keys;
    const rows = await repo.signingSecrets(db, subscriptionId);
    const opened = rows.map((r) =>
      signingKey(
        openValue(keyring, { secretId: subscriptionId, key: 'webhook', version: r.generation }, toSealed(r)),
      ),
    );
    // Forget subscriptions gone from the claims (deleted, disabled): the map stays small.
    if (keys.size > 1000) keys.clear();
    keys.set(subscriptionId, { tag, keys: opened });
    return opened;
  }

  /**
   * Request bodies of recent events: an event goes to every subscription that wants it
   * with the same body (its `timestamp` is the event's), serialized once.
   */
  const bodies = new Map<string, string>();

  function body(e: EventRow): string {
    let b = bodies.get(e.id);
    if (b === undefined) {
      if (bodies.size >= MAX_IN_FLIGHT * 2) bodies.clear();
      b = JSON.stringify(eventPayload(e));
      bodies.set(e.id, b);
    }
    return b;
  }

  /** One attempt; its result is recorded with the rest of its batch. */
  async function deliver(d: ClaimedDelivery, secrets: readonly KeyObject[]) {
    const payload = body(d.event);
    const timestamp = Math.floor(Date.now() / 1000);
    const started = performance.now();
    const out = await sender.post(d.url, payload, [
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
      stats.delivered++;
      stats.latenciesMs.push(Date.now() - d.event.at.getTime());
      if (stats.latenciesMs.length > 100_000) stats.latenciesMs.splice(0, 50_000);
    } else {
      stats.failed++;
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
  async function runBatch(subscriptionId: string, items: ClaimedDelivery[], claimedAt: number) {
    try {
      const secrets = await signingKeys(subscriptionId, items[0]!.secrets_tag);
      const byKey = new Map<string, ClaimedDelivery[]>();
      for (const d of items) {
        const k = d.event.key ?? '';
        const list = byKey.get(k);
        if (list) list.push(d);
        else byKey.set(k, [d]);
      }
      const queues = [...byKey.values()];
      const results: Awaited<ReturnType<typeof deliver>>[] = [];
      const released: { id: string; attempt: number }[] = [];
      const worker = async () => {
        for (let queue = queues.shift(); queue; queue = queues.shift()) {
          for (let i = 0; i < queue.length; i++) {
            // A request is started only if it ends (at the latest, cut at timeoutMs) well
            // before the claim's lease does: past the lease another instance may claim the
            // delivery, and it must never find one of ours still in flight. The rest go back.
            if (performance.now() - claimedAt + config.timeoutMs > leaseMs - LEASE_MARGIN_MS) {
              for (const d of queue.slice(i)) released.push({ id: d.id, attempt: d.attempts });
              break;
            }
            const r = await deliver(queue[i]!, secrets);
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
      await disableFailing(failing);
    } catch (err) {
      log.error(
        { webhook: subscriptionId, errCode: (err as { code?: unknown }).code },
        'webhook batch not recorded',
      );
    } finally {
      inFlight -= items.length;
    }
  }

  /**
   * Starts a subscription's batch (claimed, or leased by the fan-out). Several batches of
   * one subscription may run side by side: a key's later deliveries are never in a batch
   * while an earlier one is in flight (the claim's and the fan-out's order checks), and a
   * subscription's in-flight deliveries stay within PER_SUBSCRIPTION (the claim skips a
   * subscription that has them; a fan-out batch sends a subscription's fresh deliveries
   * only while it has room). `again`: claim once it ends (more are probably due).
   */
  function startBatch(sub: string, items: ClaimedDelivery[], claimedAt: number, again: boolean) {
    inFlight += items.length;
    hold(sub, items.length);
    const run = runBatch(sub, items, claimedAt).finally(() => {
      running.delete(run);
      hold(sub, -items.length);
      if (again || starved) {
        starved = false;
        nudge(true);
      }
    });
    running.add(run);
  }

  /** Counts `n` more (or, negative, fewer) deliveries of `sub` in flight here. */
  function hold(sub: string, n: number) {
    const left = (busy.get(sub) ?? 0) + n;
    if (left > 0) busy.set(sub, left);
    else busy.delete(sub);
  }

  function startAll(claimed: ClaimedDelivery[], claimedAt: number, fullAt: number) {
    const bySub = new Map<string, ClaimedDelivery[]>();
    for (const d of claimed) {
      const list = bySub.get(d.subscription_id) ?? [];
      list.push(d);
      bySub.set(d.subscription_id, list);
    }
    for (const [sub, items] of bySub) startBatch(sub, items, claimedAt, items.length >= fullAt);
  }

  /** Whether the last claim saw no enabled subscription, and the idle poll interval then. */
  let idleMs = 0;

  /**
   * A fan-out batch that sends (src/events/repository.ts `takeFanOut`, `readFanOut`,
   * `settleFanOut`): the cursor is taken by a lease, the batch's events read behind the
   * horizon, the fresh deliveries sent at once (each key's in event order, one at a time),
   * and then one statement inserts every delivery with its outcome and moves the cursor, if
   * the lease still holds it. A delivered event is then one row, written once. A failed one
   * is inserted pending with its retry due (the claim's path from there), and so is each
   * later event of its key in the batch (not sent). After SETTLE_AFTER_MS the batch settles
   * with what it has: requests still in flight are inserted leased to this instance and
   * recorded when they end. A request starts only if it ends (cut at timeoutMs) well before
   * the lease could run out, so an instance that takes the cursor after it has run out (this
   * one died, or could not settle) never finds one of ours in flight; it sends the batch
   * again (same webhook-id: at least once). Returns the events read, or undefined when
   * another instance holds the cursor.
   */
  async function leasedBatch(limit: number): Promise<number | undefined> {
    const token = randomUUID();
    const takenAt = performance.now();
    const cur = await repo.takeFanOut(db, token, leaseMs);
    if (!cur) return undefined;
    let sent = false;
    /** Deliveries of this batch counted in inFlight and not yet handed on (to recordLater). */
    let counted = 0;
    try {
      if (!cur.subs) {
        const { horizon } = await repo.readFanOut(db, cur, 0);
        await repo.skipFanOut(db, horizon, token);
        return 0;
      }
      const batch = await repo.readFanOut(db, cur, limit);
      if (batch.last === null) {
        await repo.releaseFanOut(db, token);
        return 0;
      }
      const items = batch.matches.map((m) => ({ m, outcome: { state: 'queued' } as FanOutOutcome }));
      const fresh = items.filter((i) => i.m.fresh);
      // A fresh delivery's subscription is enabled: the poll keeps its normal pace.
      if (fresh.length > 0) idleMs = 0;
      const secrets = new Map<string, readonly KeyObject[]>();
      for (const i of fresh)
        if (!secrets.has(i.m.subscription_id))
          secrets.set(i.m.subscription_id, await signingKeys(i.m.subscription_id, i.m.secrets_tag));
      const queues = new Map<string, typeof fresh>();
      for (const i of fresh) {
        const k = `${i.m.subscription_id}\0${i.m.event.key ?? ''}`;
        const q = queues.get(k);
        if (q) q.push(i);
        else queues.set(k, [i]);
      }
      const todo = [...queues.values()];
      const flights = new Map<(typeof items)[number], Promise<Awaited<ReturnType<typeof deliver>>>>();
      let settling = false;
      inFlight += fresh.length;
      counted = fresh.length;
      sent = fresh.length > 0;
      const worker = async () => {
        for (let queue = todo.shift(); queue; queue = todo.shift()) {
          for (const i of queue) {
            if (settling || performance.now() - takenAt + config.timeoutMs > leaseMs - LEASE_MARGIN_MS) break;
            // A subscription with PER_SUBSCRIPTION in flight here (a slow receiver) gets no
            // more: the rest of this key is inserted pending, for a claim (which skips it
            // while it is busy), so it cannot take every other subscription's room.
            const sub = i.m.subscription_id;
            if ((busy.get(sub) ?? 0) >= PER_SUBSCRIPTION) break;
            hold(sub, 1);
            i.outcome = { state: 'flight' };
            const p = deliver(asDelivery(i.m), secrets.get(sub)!).finally(() => hold(sub, -1));
            flights.set(i, p);
            const r = await p;
            // Settled meanwhile: the delivery is inserted in flight, and recorded from there.
            if (settling) break;
            flights.delete(i);
            i.outcome = r.ok
              ? { state: 'delivered', status: r.status, latencyMs: r.latencyMs, error: null, retryMs: null }
              : {
                  state: r.retryMs === null ? 'failed' : 'retry',
                  status: r.status,
                  latencyMs: r.latencyMs,
                  error: r.error,
                  retryMs: r.retryMs,
                };
            if (!r.ok) break;
          }
        }
      };
      const workers = Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        workers,
        new Promise((res) => {
          timer = setTimeout(res, SETTLE_AFTER_MS);
        }),
      ]);
      clearTimeout(timer);
      settling = true;
      const inFlightNow = [...flights];
      const settled = await repo.settleFanOut(
        db,
        token,
        batch.last,
        items.map((i) => ({
          sub: i.m.subscription_id,
          seq: i.m.event.seq,
          key: i.m.event.key ?? '',
          outcome: i.outcome,
        })),
        leaseMs,
      );
      inFlight -= fresh.length - inFlightNow.length;
      counted = inFlightNow.length;
      if (!settled.held) {
        // The lease ran out and another instance took the cursor: it sends this batch again.
        log.warn('webhook fan-out lease lost before its batch was recorded; another instance sends it again');
        return batch.read;
      }
      if (inFlightNow.length > 0) recordLater(inFlightNow, settled.flight);
      counted = 0;
      if (starved) {
        starved = false;
        nudge(true);
      }
      await disableFailing(settled.failing);
      return batch.read;
    } catch (err) {
      // Nothing sent yet: the cursor can go at once. Otherwise the lease runs out first, so
      // no request of this batch can still be in flight when another instance sends it again.
      if (!sent) await repo.releaseFanOut(db, token).catch(() => undefined);
      throw err;
    } finally {
      inFlight -= counted;
    }
  }

  /** A fan-out match as a delivery to send (attempt 1; its row does not exist yet). */
  function asDelivery(m: FanOutMatch): ClaimedDelivery {
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
  function recordLater(
    flying: [{ m: FanOutMatch }, Promise<Awaited<ReturnType<typeof deliver>>>][],
    ids: string[],
  ) {
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
        await disableFailing(await repo.recordAttempts(db, results));
      } catch (err) {
        log.error({ errCode: (err as { code?: unknown }).code }, 'webhook batch not recorded');
      } finally {
        inFlight -= flying.length;
      }
    })().finally(() => {
      running.delete(run);
      if (starved) {
        starved = false;
        nudge(true);
      }
    });
    running.add(run);
  }

  async function disableFailing(subs: readonly string[]) {
    for (const sub of subs)
      if (await repo.disableIfFailing(db, sub, config.disableMinFailures, config.disableAfterMs))
        log.error({ webhook: sub }, 'webhook subscription disabled after a long run of failures');
  }

  /**
   * Fans out the events written since the last fan-out (by any instance), batch after batch,
   * until it has caught up, another instance holds the cursor, or `batches` batches ran (then
   * another round follows at once). `send`: batches that send (`leasedBatch`); otherwise
   * they only queue, each in a short transaction (src/events/repository.ts `fanOut`).
   */
  async function fanOut(batches: number, send: boolean) {
    try {
      for (let i = 0; i < batches; i++) {
        if (!send) {
          const out = await db.transaction((tx) => repo.fanOut(tx, FAN_OUT_BATCH));
          if (out === undefined || out.read < FAN_OUT_BATCH) return;
          continue;
        }
        if (stopped) return;
        // A batch reads about as many events as there is room to send; with none, it waits.
        const free = MAX_IN_FLIGHT - inFlight;
        if (free <= 0) {
          starved = true;
          return;
        }
        const limit = Math.min(FAN_OUT_BATCH, Math.max(FAN_OUT_MIN, free));
        const read = await leasedBatch(limit);
        if (read === undefined || read < limit) return;
      }
      if (send) more = true;
    } catch (err) {
      log.warn(
        { errCode: (err as { code?: unknown }).code },
        'webhook fan-out failed; retrying on the next round',
      );
    }
  }

  /** The fan-out running here, if one is: one at a time per instance. */
  let fanning: Promise<void> | undefined;
  function fanOutOnce(): Promise<void> {
    fanning ??= fanOut(FAN_OUT_PER_ROUND, true).finally(() => {
      fanning = undefined;
      // A full last batch: another round at once (or when the running claim ends).
      if (more && !claiming) {
        more = false;
        nudge(true);
      }
    });
    return fanning;
  }

  /**
   * A claim round. A poll fans out first, so the claim sees the events written since the
   * last one. A round that follows a full batch claims at once (the fan-out runs ahead of
   * the claims, and more deliveries are probably queued) and fans out beside it, so the
   * fan-out's statements are not on the delivery's critical path under a backlog.
   */
  async function claimRound(afterFullBatch = false) {
    if (stopped) return;
    if (afterFullBatch) void fanOutOnce();
    else await fanOutOnce();
    const free = MAX_IN_FLIGHT - inFlight;
    if (stopped) return;
    if (free <= 0) {
      starved = true;
      return;
    }
    let claimed: ClaimedDelivery[];
    const claimedAt = performance.now();
    const perSub = Math.min(PER_SUBSCRIPTION, free);
    try {
      const got = await repo.claim(db, {
        busy: [...busy].filter(([, n]) => n >= PER_SUBSCRIPTION).map(([sub]) => sub),
        perSub,
        limit: free,
        leaseMs,
      });
      claimed = got.claimed;
      idleMs = got.anySubscription ? 0 : Math.min(IDLE_MAX_MS, Math.max(config.pollMs, idleMs * 2));
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
    startAll(claimed, claimedAt, perSub);
  }

  /** Claims now (unless a claim is running): called by the timer and when a batch ends. */
  function nudge(afterFullBatch = false) {
    if (stopped || claiming) return;
    claiming = claimRound(afterFullBatch).finally(() => {
      claiming = undefined;
      if (more) {
        more = false;
        nudge(true);
      }
    });
  }

  /**
   * The poll: every pollMs while a subscription is enabled somewhere; while none is, the
   * interval doubles up to IDLE_MAX_MS (a subscription created or enabled through this
   * instance wakes it at once: `wake`; another instance's is seen at the next poll).
   */
  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(
      () => {
        nudge();
        void Promise.resolve(claiming).finally(schedule);
      },
      Math.max(config.pollMs, idleMs),
    );
    timer.unref();
  }

  /** secret.expiring notices and pruning of old events. */
  async function sweep() {
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

  return {
    stats,
    sweep,
    /** Queues the deliveries of every event written so far (tests; each claim round fans out first). */
    fanOut: () => fanOut(Number.MAX_SAFE_INTEGER, false),
    /** The poll's interval now: pollMs, or longer while idle (tests read it). */
    get pollIntervalMs() {
      return Math.max(config.pollMs, idleMs);
    },
    /** One claim round, awaited (tests and benchmarks); the batches it starts run on. */
    async deliverNow() {
      const was = stopped;
      stopped = false;
      await claimRound();
      stopped = was;
    },
    /** Waits for every batch in flight here. */
    async idle() {
      while (running.size > 0 || claiming || fanning) await Promise.all([...running, claiming, fanning]);
    },
    /** A subscription was created or enabled here: poll at the normal pace again, now. */
    wake() {
      idleMs = 0;
      if (timer && !stopped) {
        nudge();
        void Promise.resolve(claiming).finally(schedule);
      }
    },
    start() {
      if (config.pollMs <= 0) return;
      stopped = false;
      schedule();
      jobsRunning = sweep();
      jobsTimer = setInterval(() => {
        jobsRunning = sweep();
      }, 60_000);
      jobsTimer.unref();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(jobsTimer);
      await claiming;
      await fanning;
      while (running.size > 0) await Promise.all([...running]);
      await jobsRunning;
      await sender.close();
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
