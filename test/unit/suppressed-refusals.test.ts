import { expect, it, vi } from 'vitest';
import type { AuditEntry } from '../../src/audit/entry.js';
import { OVERFLOW_ACTOR, SuppressedRefusals } from '../../src/audit/suppressed.js';
import { createLogger } from '../../src/logger.js';

// Issue 21: the refusals rate limits answer without a row each are written as one summary
// row per limit and identity (or address) and window, with bounded memory, and none is lost
// when a write fails. A fixed clock and explicit flushes, or fake timers: no real time passes.

const at = (iso: string) => Date.parse(iso);

function tally(opts: { maxTracked?: number; fail?: () => boolean; intervalMs?: number } = {}) {
  const written: AuditEntry[] = [];
  let now = at('2026-12-05T10:00:00.000Z');
  const s = new SuppressedRefusals({
    record: async (rows) => {
      if (opts.fail?.()) throw Object.assign(new Error('down'), { code: '57P01' });
      written.push(...rows);
    },
    log: createLogger('silent'),
    intervalMs: opts.intervalMs ?? 0,
    now: () => now,
    ...(opts.maxTracked === undefined ? {} : { maxTracked: opts.maxTracked }),
  });
  return {
    s,
    written,
    tick: (ms: number) => {
      now += ms;
    },
  };
}

it('writes one row per limit and identity or address, counting in version, then starts afresh', async () => {
  const { s, written, tick } = tally();
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'access_key:k1', '10.0.0.1');
  tick(1500);
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'access_key:k1', '10.0.0.1');
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
  // The same identity from another address: still one row, its address no longer single.
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.3');
  s.note('AUTH_FAILURE_RATE_LIMIT', 'address', 'anonymous', '10.0.0.9');
  s.note('AUTH_FAILURE_RATE_LIMIT', 'address', 'anonymous', '10.0.0.9');
  expect(s.pending()).toBe(6);
  await s.flush();
  expect(written).toEqual([
    {
      actor: 'access_key:k1',
      action: 'refusals.suppressed',
      key: 'REFUSAL_RATE_LIMIT 2026-12-05T10:00:00.000Z/2026-12-05T10:00:01.500Z',
      version: 2,
      outcome: 'rate_limited',
      requestId: null,
      clientIp: '10.0.0.1',
      clientRequestId: false,
      environment: null,
    },
    expect.objectContaining({ actor: 'admin:eve', version: 2, clientIp: null }),
    expect.objectContaining({
      actor: 'anonymous',
      key: 'AUTH_FAILURE_RATE_LIMIT 2026-12-05T10:00:01.500Z/2026-12-05T10:00:01.500Z',
      version: 2,
      clientIp: '10.0.0.9',
    }),
  ]);
  expect(s.pending()).toBe(0);
  await s.flush();
  expect(written).toHaveLength(3);
});

it('past maxTracked, counts everyone else in one overflow row per limit', async () => {
  const { s, written } = tally({ maxTracked: 2 });
  for (let i = 0; i < 5; i++) s.note('REFUSAL_RATE_LIMIT', 'identity', `access_key:k${i}`, '10.0.0.1');
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'access_key:k0', '10.0.0.1');
  s.note('LOGIN_RATE_LIMIT', 'address', 'anonymous', '10.0.0.7');
  await s.flush();
  expect(written.map((r) => [r.actor, r.key?.split(' ')[0], r.version, r.clientIp])).toEqual([
    ['access_key:k0', 'REFUSAL_RATE_LIMIT', 2, '10.0.0.1'],
    ['access_key:k1', 'REFUSAL_RATE_LIMIT', 1, '10.0.0.1'],
    [OVERFLOW_ACTOR, 'REFUSAL_RATE_LIMIT', 3, null],
    [OVERFLOW_ACTOR, 'LOGIN_RATE_LIMIT', 1, null],
  ]);
  // Every refusal counted once.
  expect(written.reduce((n, r) => n + (r.version ?? 0), 0)).toBe(7);
});

it('keeps the counts of a write that failed for the next window', async () => {
  let down = true;
  const { s, written } = tally({ fail: () => down });
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
  await s.flush();
  expect(written).toEqual([]);
  s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
  down = false;
  await s.stop();
  expect(written).toEqual([
    expect.objectContaining({ actor: 'admin:eve', version: 3, clientIp: '10.0.0.2' }),
  ]);
});

it('writes each window on its timer, and what is left when stopped', async () => {
  vi.useFakeTimers();
  try {
    const { s, written } = tally({ intervalMs: 60_000 });
    s.start();
    s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
    await vi.advanceTimersByTimeAsync(59_999);
    expect(written).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(written).toEqual([expect.objectContaining({ actor: 'admin:eve', version: 1 })]);
    // An empty window writes nothing.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(written).toHaveLength(1);
    s.note('REFUSAL_RATE_LIMIT', 'identity', 'admin:eve', '10.0.0.2');
    await s.stop();
    expect(written).toHaveLength(2);
    // Stopped: no timer is left to fire.
    expect(vi.getTimerCount()).toBe(0);
  } finally {
    vi.useRealTimers();
  }
});
