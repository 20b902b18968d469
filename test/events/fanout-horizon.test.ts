import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventsRepository } from '../../src/events/repository.js';
import { backend, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { whileOpenInAnotherDatabase, whileWritingInAnotherSchema } from '../helpers/other-transactions.js';
import { secretValue } from '../helpers/secrets.js';
import {
  deliversToReceiver,
  type Receiver,
  startReceiver,
  subscribeReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * The fan-out's horizon (src/db/xid-horizon.ts `HorizonProbe`): its reads take the server's
 * oldest running transaction as the horizon (no pg_locks scan) while that holds nothing back,
 * and the schema's writers from pg_locks once it holds back an event committed a while ago.
 * So another application's long transaction delays a webhook by about one more round, not
 * until it ends, and once it ends the reads go back to the cheap horizon.
 *
 * The long transactions are other sessions' (PGlite has one session): those cases run on
 * PostgreSQL only. Rounds are the poll's (WEBHOOK_POLL_MS=20: `deliverNow`, which other tests
 * use, always reads pg_locks); the test waits for conditions only, and the time it depends on
 * is that an event it wrote becomes older than HELD_BACK_MS while rounds keep running.
 */
describe('the fan-out horizon', () => {
  const t = useTestApp({
    env: { AUDIT_SEAL_INTERVAL_MS: '0', ...deliversToReceiver, WEBHOOK_POLL_MS: '20' },
    resetEachTest: true,
  });
  const admin = api(t, 'alice');
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Whether each fan-out lease taken since the spy was set read pg_locks, in order. */
  function watchTakes(): boolean[] {
    const readsLocks: boolean[] = [];
    const take = EventsRepository.prototype.takeFanOut;
    vi.spyOn(EventsRepository.prototype, 'takeFanOut').mockImplementation(function (
      this: EventsRepository,
      ...args: Parameters<EventsRepository['takeFanOut']>
    ) {
      readsLocks.push(args[3] ?? true);
      return take.apply(this, args);
    });
    return readsLocks;
  }

  /** Waits until the receiver has an event of `key` (the test's timeout bounds it). */
  async function roundsUntilDelivered(r: Receiver, key: string) {
    while (!r.received.some((x) => x.body.data.key === key)) await new Promise((res) => setTimeout(res, 20));
  }

  async function subscribed(): Promise<Receiver> {
    const r = await startReceiver();
    await subscribeReceiver(admin, r);
    return r;
  }

  /** Waits until a round after the first `from` took the cheap horizon (read no pg_locks). */
  async function aCheapRoundAfter(readsLocks: boolean[], from: number) {
    while (!readsLocks.slice(from).includes(false)) await new Promise((res) => setTimeout(res, 20));
  }

  // On PGlite nothing else ever runs, so no round reads pg_locks. On PostgreSQL other
  // sessions (other test files) may hold the cheap horizon back at any time: there the
  // rounds use it once nothing old runs, which the test waits for.
  it('while nothing old runs, rounds read no pg_locks, and every event arrives in order', async () => {
    const r = await subscribed();
    try {
      const readsLocks = watchTakes();
      for (const key of ['FIRST', 'SECOND', 'THIRD']) {
        expect((await admin.create({ key, value: secretValue() })).statusCode).toBe(201);
        await roundsUntilDelivered(r, key);
      }
      expect(readsLocks.length).toBeGreaterThan(0);
      if (backend === 'pglite') expect(readsLocks).not.toContain(true);
      else await aCheapRoundAfter(readsLocks, 0);
      expect(r.received.map((x) => x.body.data.key)).toEqual(['FIRST', 'SECOND', 'THIRD']);
    } finally {
      await r.close();
    }
  });

  if (backend !== 'postgres') return;
  for (const [what, holdOpen] of [
    ['in another database', whileOpenInAnotherDatabase],
    ['writing in another schema of the same database', whileWritingInAnotherSchema],
  ] as const)
    it(`a long transaction ${what} is waited out by reading pg_locks, and only while it holds events back`, async () => {
      const r = await subscribed();
      try {
        const readsLocks = watchTakes();
        expect((await admin.create({ key: 'BEFORE', value: secretValue() })).statusCode).toBe(201);
        await roundsUntilDelivered(r, 'BEFORE');

        await holdOpen(async () => {
          expect((await admin.create({ key: 'DURING', value: secretValue() })).statusCode).toBe(201);
          // Delivered while the other transaction is still open (the cheap horizon alone
          // would hold it until that transaction ends), by a round that read pg_locks.
          await roundsUntilDelivered(r, 'DURING');
        });
        expect(readsLocks).toContain(true);

        const ended = readsLocks.length;
        expect((await admin.create({ key: 'AFTER', value: secretValue() })).statusCode).toBe(201);
        await roundsUntilDelivered(r, 'AFTER');
        // Nothing holds events back any longer: the rounds go back to the cheap horizon.
        await aCheapRoundAfter(readsLocks, ended);
        expect(r.received.map((x) => x.body.data.key)).toEqual(['BEFORE', 'DURING', 'AFTER']);
      } finally {
        await r.close();
      }
    });
});
