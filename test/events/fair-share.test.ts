import { afterEach, describe, expect, it } from 'vitest';
import { BACKGROUND_STREAK } from '../../src/db/admission.js';
import { backend, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * Webhook delivery gets its share of the database under a stream of writes. On PGlite (one
 * connection, statements one at a time) the dispatcher's statements and transactions go
 * before queued requests' (src/db/admission.ts), and a queued request is passed over only
 * BACKGROUND_STREAK times in a row. Nothing here measures time: orders and counts only.
 */
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', ...deliversToReceiver },
  resetEachTest: true,
});
const admin = api(t, 'alice');

const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});

async function subscribe() {
  const r = await startReceiver();
  receivers.push(r);
  await subscribeReceiver(admin, r);
  return r;
}

/** Resolves once `cond` holds, checked after each turn of the event loop. */
async function until(cond: () => boolean) {
  while (!cond()) await new Promise((resolve) => setImmediate(resolve));
}

/** Writers that each update their own key again and again until `stop`. */
function writers(n: number) {
  let stopping = false;
  const written: { key: string; version: number }[] = [];
  const perWriter = Array.from({ length: n }, () => 0);
  const loops = perWriter.map(async (_, i) => {
    const key = `FAIR_${i}`;
    while (!stopping) {
      const res = await admin.update(key, { value: secretValue() });
      expect(res.statusCode, res.body).toBe(200);
      // Each writer alone updates its key, one write after another: created as version 1.
      perWriter[i]!++;
      written.push({ key, version: perWriter[i]! + 1 });
    }
  });
  return {
    written,
    /** Every writer has written at least `k` times. */
    each: (k: number) => perWriter.every((c) => c >= k),
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

async function createKeys(n: number) {
  for (let i = 0; i < n; i++)
    expect((await admin.create({ key: `FAIR_${i}`, value: secretValue() })).statusCode).toBe(201);
}

it('delivers the events written before a round while writers keep the database busy', async () => {
  const r = await subscribe();
  await createKeys(8);
  const w = writers(8);
  try {
    await until(() => w.each(2));
    const before = w.written.map((e) => `${e.key} ${e.version}`);
    const d = t.app.webhookDispatcher;
    const missing = () => {
      const got = new Set(r.received.map((x) => `${x.body.data.key} ${x.body.data.version}`));
      return before.filter((e) => !got.has(e));
    };
    // Rounds (each awaited with its requests) until they are all delivered, the writers
    // running on meanwhile: a round sends what it can and leaves the rest to the next. A
    // dispatcher starved by the writers would never end a round here.
    for (let round = 0; round < 50 && missing().length > 0; round++) {
      await d.deliverNow();
      await d.idle();
    }
    expect(missing()).toEqual([]);
  } finally {
    await w.stop();
  }
});

// The order of admission is PGlite's alone: on PostgreSQL the pool gives the dispatcher a
// connection of its own, and `background()` is the same database.
// PGlite only (no test is skipped on PostgreSQL: there, none is defined).
if (backend === 'pglite')
  describe('PGlite: background work goes first, requests are not starved', () => {
    /** A foreground transaction holding PGlite until `release`. */
    async function hold() {
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => {
        entered = resolve;
      });
      const done = t.db.transaction(async (tx) => {
        await tx.query('SELECT 1');
        entered();
        await released;
      });
      await inside;
      return { release, done };
    }

    it('runs a background statement and a background transaction before queued foreground ones', async () => {
      const order: string[] = [];
      const h = await hold();
      const fg = Array.from({ length: 5 }, (_, i) =>
        t.db.query('SELECT $1::int AS n', [i]).then(() => order.push(`fg${i}`)),
      );
      const bgQuery = t.db
        .background()
        .query('SELECT 1')
        .then(() => order.push('bg query'));
      const bgTx = t.db
        .background()
        .transaction(async (tx) => {
          await tx.query('SELECT 1');
          await tx.query('SELECT 2');
        })
        .then(() => order.push('bg transaction'));
      expect(t.db.stats()).toEqual({ total: 1, idle: 0, waiting: 7 });
      h.release();
      await Promise.all([h.done, ...fg, bgQuery, bgTx]);
      expect(order).toEqual(['bg query', 'bg transaction', 'fg0', 'fg1', 'fg2', 'fg3', 'fg4']);
      expect(t.db.stats()).toEqual({ total: 1, idle: 1, waiting: 0 });
    });

    it(`lets a queued request go after at most ${BACKGROUND_STREAK} background statements in a row`, async () => {
      const order: string[] = [];
      const h = await hold();
      // Two streams of background statements: whenever one ends, the other's next is waiting.
      let left = 4 * BACKGROUND_STREAK;
      const stream = async () => {
        while (left-- > 0) {
          await t.db.background().query('SELECT 1');
          order.push('bg');
        }
      };
      const streams = [stream(), stream()];
      const fg = t.db.query('SELECT 1').then(() => order.push('fg'));
      h.release();
      await Promise.all([h.done, fg, ...streams]);
      expect(order.indexOf('fg')).toBe(BACKGROUND_STREAK);
      // The background streams went on after it: the request was not simply left to the end.
      expect(order.lastIndexOf('bg')).toBeGreaterThan(BACKGROUND_STREAK);
    });

    it('runs a webhook round before the requests queued ahead of it', async () => {
      // No subscription: the round (fan-out lease, read, cursor moved on, claim) is database
      // work alone, no request to a receiver, so what ran before it is a matter of order only.
      // The queued requests are /ready probes: one statement each.
      const queued = 32;
      const h = await hold();
      const probes = Array.from({ length: queued }, () => t.app.inject({ method: 'GET', url: '/ready' }));
      await until(() => t.db.stats().waiting >= queued);
      const round = t.app.webhookDispatcher.deliverNow();
      // The round's first statement waits too.
      await until(() => t.db.stats().waiting >= queued + 1);
      h.release();
      await round;
      // Most probes still wait for their statement. In arrival order (PGlite's own) the round's
      // first statement would have waited for all of them; here a probe gets the database only
      // between two of the round's statements.
      expect(t.db.stats().waiting).toBeGreaterThan(queued / 2);
      await h.done;
      for (const res of await Promise.all(probes)) expect(res.statusCode, res.body).toBe(200);
    });
  });
