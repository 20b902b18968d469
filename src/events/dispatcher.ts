import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventsConfig } from '../config.js';
import { openValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { toSealed } from '../db/sealed-columns.js';
import type { ClaimedDelivery, EventRow, EventsRepository } from './repository.js';
import { createSender } from './sender.js';
import { signatureHeader, signingKey } from './signing.js';

/**
 * Webhook delivery on a timer, in every instance (src/app.ts starts and stops it with the
 * app, like the audit jobs). Each round first fans the events written since the last round
 * out into deliveries (writers only write the event), inserting those this instance has
 * room for already claimed by it (src/events/repository.ts `fanOut`), then claims due
 * deliveries left for a claim in one statement (FOR UPDATE SKIP LOCKED plus a lease,
 * `claim`), so instances never send the same delivery at the same time; then it sends them
 * without waiting: a round never waits for a receiver. A subscription's batches run on their
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
 * Events read per fan-out batch, and batches per claim round at most: a backlog is fanned
 * out a few thousand events ahead of the claims, not all of it before the first is sent.
 */
const FAN_OUT_BATCH = 1000;
const FAN_OUT_PER_ROUND = 2;
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
      for (const sub of failing)
        if (await repo.disableIfFailing(db, sub, config.disableMinFailures, config.disableAfterMs))
          log.error({ webhook: sub }, 'webhook subscription disabled after a long run of failures');
    } catch (err) {
      log.error({ webhook: subscriptionId, err: (err as Error).message }, 'webhook batch not recorded');
    } finally {
      inFlight -= items.length;
    }
  }

  /**
   * Starts a subscription's batch (claimed, or leased by the fan-out). Several batches of
   * one subscription may run side by side: a key's later deliveries are never in a batch
   * while an earlier one is in flight (the claim's and the fan-out's order checks), and a
   * subscription's in-flight deliveries stay within PER_SUBSCRIPTION (the claim skips a
   * subscription that has them; the fan-out leases only up to its room). `again`: claim
   * once it ends (more are probably due).
   */
  function startBatch(sub: string, items: ClaimedDelivery[], claimedAt: number, again: boolean) {
    inFlight += items.length;
    busy.set(sub, (busy.get(sub) ?? 0) + items.length);
    const run = runBatch(sub, items, claimedAt).finally(() => {
      running.delete(run);
      const left = (busy.get(sub) ?? 0) - items.length;
      if (left > 0) busy.set(sub, left);
      else busy.delete(sub);
      if (again || starved) {
        starved = false;
        nudge(true);
      }
    });
    running.add(run);
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
   * Queues the deliveries of the events written since the last fan-out (by any instance),
   * a batch per short transaction (src/events/repository.ts `fanOut`), until it has caught
   * up, another instance is fanning out, or `batches` batches ran.
   */
  async function fanOut(batches: number, send: boolean) {
    try {
      for (let i = 0; i < batches; i++) {
        const lease = send && !stopped ? fanOutLease() : undefined;
        // While sending, the fan-out reads about as many events as there is room to send:
        // the rest wait in change_events for the next fan-out (nothing fanned out is left
        // for a claim, one statement less per event); with no room at all, it waits.
        if (lease && lease.free <= 0) return;
        const limit = lease ? Math.min(FAN_OUT_BATCH, Math.max(FAN_OUT_MIN, lease.free)) : FAN_OUT_BATCH;
        const claimedAt = performance.now();
        const out = await db.transaction((tx) => repo.fanOut(tx, limit, lease));
        // Sent only once committed: a rolled-back fan-out leased nothing. When the read was
        // full, more events wait: the end of a batch fans out again at once.
        if (out && out.leased.length > 0)
          startAll(out.leased, claimedAt, out.read >= limit ? 0 : Number.MAX_SAFE_INTEGER);
        if (out === undefined || out.read < limit) return;
      }
    } catch (err) {
      log.warn(
        { errCode: (err as { code?: unknown }).code },
        'webhook fan-out failed; retrying on the next round',
      );
    }
  }

  /** What the fan-out may lease to this instance now: its room, in all and per subscription. */
  function fanOutLease() {
    const free = MAX_IN_FLIGHT - inFlight;
    return {
      leaseMs,
      perSub: Math.min(PER_SUBSCRIPTION, free),
      rooms: [...busy].map(([subscriptionId, n]) => ({
        subscriptionId,
        room: Math.max(0, Math.min(PER_SUBSCRIPTION - n, free)),
      })),
      free: Math.max(0, free),
    };
  }

  /** The fan-out running here, if one is: one at a time per instance. */
  let fanning: Promise<void> | undefined;
  function fanOutOnce(): Promise<void> {
    fanning ??= fanOut(FAN_OUT_PER_ROUND, true).finally(() => {
      fanning = undefined;
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
