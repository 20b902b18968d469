import { afterEach, expect, it, vi } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * The dispatcher's idle back-off (src/events/dispatcher.ts `schedule`): while no
 * subscription is enabled anywhere, its poll interval doubles from WEBHOOK_POLL_MS up to
 * 30 s, so an idle instance sends a handful of claim statements instead of one per poll;
 * a subscription enabled through this instance wakes it at once, and one enabled elsewhere
 * is seen at its next poll. Nothing here asserts a duration or counts against one: the
 * claims are counted against the interval's growth, and arrivals are awaited.
 */
const POLL_MS = 10;
const t = useTestApp({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_POLL_MS: String(POLL_MS),
  },
  resetEachTest: true,
});
const admin = api(t, 'alice');

let r: Receiver | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

/** Counts the dispatcher's claim statements (on its handle of the app's database) from now on. */
function countClaims() {
  const db = t.db.background();
  const query = db.query.bind(db);
  const seen = { claims: 0 };
  const spy = vi.spyOn(db, 'query').mockImplementation(((sql: string, ...rest: unknown[]) => {
    if (sql.includes('FOR UPDATE OF d SKIP LOCKED')) seen.claims++;
    return (query as (...a: unknown[]) => unknown)(sql, ...rest);
  }) as typeof db.query);
  return { seen, restore: () => spy.mockRestore() };
}

/** A receiver (closed after the test) and a subscription to it, created and then disabled: none is enabled. */
async function disabledSubscription(): Promise<{ receiver: Receiver; id: string }> {
  const receiver = await startReceiver();
  r = receiver;
  const res = await admin.req('POST', '/api/webhooks', { url: receiver.url });
  expect(res.statusCode, res.body).toBe(201);
  receiver.secrets.push(res.json().secret);
  const id = res.json().id as string;
  expect((await admin.req('PATCH', `/api/webhooks/${id}`, { enabled: false })).statusCode).toBe(200);
  return { receiver, id };
}

it('polls less and less while no subscription is enabled, and delivers an event enabled elsewhere', async () => {
  const { receiver, id } = await disabledSubscription();

  const c = countClaims();
  try {
    // From the normal pace (a wake, as a subscription enabled here gives), idle until the
    // interval has grown to 64 polls (awaited, not timed). Each idle claim doubles it (0, 10,
    // 20 ... 640 ms): seven claims, one of them perhaps sent before the count began, and
    // perhaps one more sent since. At a steady 10 ms poll it never grows; the count holds
    // however slow the machine is.
    t.app.webhookDispatcher.wake();
    await vi.waitFor(
      () => expect(t.app.webhookDispatcher.pollIntervalMs).toBeGreaterThanOrEqual(POLL_MS * 64),
      {
        timeout: 60_000,
        interval: 20,
      },
    );
    expect(c.seen.claims).toBeGreaterThanOrEqual(6);
    expect(c.seen.claims).toBeLessThanOrEqual(8);

    // Enabled by another instance (no wake here), then a change commits: the next poll,
    // however far off, finds the subscription and the delivery, and the pace is back.
    await t.db.query(`UPDATE webhook_subscriptions SET enabled = true WHERE id = $1`, [id]);
    expect((await admin.create({ key: 'APP_IDLE', value: secretValue() })).statusCode).toBe(201);
    await vi.waitFor(() => expect(receiver.received).toHaveLength(1), { timeout: 60_000, interval: 50 });
    expect(receiver.received[0]!.body).toMatchObject({ type: 'secret.created', data: { key: 'APP_IDLE' } });
    expect(receiver.rejected).toBe(0);
    expect(t.app.webhookDispatcher.pollIntervalMs).toBe(POLL_MS);
  } finally {
    c.restore();
  }
});

it('wakes at once when a subscription is enabled through this instance', async () => {
  const { receiver, id } = await disabledSubscription();
  // Idle until the interval has doubled a few times (awaited, not timed).
  await vi.waitFor(() => expect(t.app.webhookDispatcher.pollIntervalMs).toBeGreaterThanOrEqual(POLL_MS * 8), {
    timeout: 60_000,
    interval: 20,
  });
  expect((await admin.req('PATCH', `/api/webhooks/${id}`, { enabled: true })).statusCode).toBe(200);
  expect(t.app.webhookDispatcher.pollIntervalMs).toBe(POLL_MS);
  expect((await admin.create({ key: 'APP_WOKEN', value: secretValue() })).statusCode).toBe(201);
  await vi.waitFor(() => expect(receiver.received.map((x) => x.body.data.key)).toContain('APP_WOKEN'), {
    timeout: 60_000,
    interval: 50,
  });
  expect(receiver.rejected).toBe(0);
});
