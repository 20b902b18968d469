import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventsRepository } from '../../src/events/repository.js';
import { createAccessKey } from '../helpers/access-keys.js';
import { backend } from '../helpers/app.js';
import {
  clientOfSchema,
  whileOpenInAnotherDatabase,
  whileWritingInAnotherSchema,
} from '../helpers/other-transactions.js';
import { useTestServer } from '../helpers/server.js';

const t = useTestServer({
  env: {
    AUDIT_SEAL_INTERVAL_MS: '0',
    WEBHOOK_POLL_MS: '0',
    EVENTS_HEARTBEAT_MS: '50',
    EVENT_STREAMS_PER_CALLER: '4',
  },
});

interface Frame {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A Server-Sent Events client over fetch: frames in order, waited for by predicate. */
async function open(headers: Record<string, string>) {
  const ac = new AbortController();
  const res = await fetch(`${t.url}/api/events`, { headers, signal: ac.signal });
  const frames: Frame[] = [];
  let buf = '';
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  async function until(pred: (frames: Frame[]) => boolean) {
    while (!pred(frames)) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const f: Frame = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) f.comment = line.slice(1).trim();
          else {
            const [k, ...rest] = line.split(': ');
            if (k === 'id' || k === 'event' || k === 'data') f[k] = rest.join(': ');
          }
        }
        frames.push(f);
      }
    }
  }
  const events = () => frames.filter((f) => f.event);
  return { res, frames, events, until, close: () => ac.abort() };
}

const admin = () => ({ authorization: `Bearer ${t.token('alice')}` });
const opened: { close(): void }[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const s of opened.splice(0)) s.close();
});

async function create(key: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: admin(),
    payload: { key, value: 'v-1' },
  });
  expect(res.statusCode).toBe(201);
}

describe('GET /api/events', () => {
  it('streams changes, resumes after a dropped connection without gaps, scopes access keys', async () => {
    const first = await open(admin());
    opened.push(first);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('content-type')).toContain('text/event-stream');
    await first.until((f) => f.some((x) => x.comment === 'heartbeat'));
    await create('APP_ONE');
    await create('DB_ONE');
    await first.until(() => first.events().length >= 2);
    expect(first.events().map((f) => [f.event, JSON.parse(f.data!).data.key])).toEqual([
      ['secret.created', 'APP_ONE'],
      ['secret.created', 'DB_ONE'],
    ]);
    expect(first.events()[0]!.data).not.toContain('v-1');
    const last = first.events()[1]!.id!;
    first.close();

    await create('APP_TWO');
    await create('APP_THREE');
    const again = await open({ ...admin(), 'last-event-id': last });
    opened.push(again);
    await create('DB_TWO');
    await again.until(() => again.events().length >= 3);
    expect(again.events().map((f) => JSON.parse(f.data!).data.key)).toEqual([
      'APP_TWO',
      'APP_THREE',
      'DB_TWO',
    ]);

    // An access key sees only its patterns (here from the beginning: position 0-0).
    const k = await createAccessKey(t, { scopes: ['secrets:list'], keys: ['APP_*'] });
    const scoped = await open({ 'x-api-key': k.token, 'last-event-id': '0-0' });
    opened.push(scoped);
    await create('APP_FOUR');
    await scoped.until(() => scoped.events().some((f) => JSON.parse(f.data!).data.key === 'APP_FOUR'));
    expect(scoped.events().map((f) => JSON.parse(f.data!).data.key)).toEqual([
      'APP_ONE',
      'APP_TWO',
      'APP_THREE',
      'APP_FOUR',
    ]);
  });

  it('names the environment of each event and shows a key only the environments it covers', async () => {
    for (const name of ['ev-staging', 'ev-production']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/environments',
        headers: admin(),
        payload: { name },
      });
      expect(res.statusCode).toBe(201);
    }
    const createIn = async (env: string, key: string) => {
      const res = await t.app.inject({
        method: 'POST',
        url: `/api/environments/${env}/secrets`,
        headers: admin(),
        payload: { key, value: 'v-env' },
      });
      expect(res.statusCode).toBe(201);
    };
    const k = await createAccessKey(t, { scopes: ['secrets:list'], environments: ['ev-staging'] });
    const scoped = await open({ 'x-api-key': k.token });
    opened.push(scoped);
    await scoped.until((f) => f.some((x) => x.comment === 'heartbeat'));
    const all = await open(admin());
    opened.push(all);
    await all.until((f) => f.some((x) => x.comment === 'heartbeat'));
    await create('ENV_DEFAULT_ONLY');
    await createIn('ev-production', 'ENV_PROD_ONLY');
    await createIn('ev-staging', 'ENV_SHARED');
    await createIn('ev-production', 'ENV_SHARED');
    await createIn('ev-staging', 'ENV_MARKER');
    await scoped.until(() => scoped.events().some((f) => JSON.parse(f.data!).data.key === 'ENV_MARKER'));
    const seen = scoped.events().map((f) => JSON.parse(f.data!).data as { key: string; environment: string });
    expect(seen.map((d) => [d.environment, d.key])).toEqual([
      ['ev-staging', 'ENV_SHARED'],
      ['ev-staging', 'ENV_MARKER'],
    ]);
    // The admin's stream has all five, each with its environment.
    await all.until(() => all.events().some((f) => JSON.parse(f.data!).data.key === 'ENV_MARKER'));
    expect(
      all.events().map((f) => {
        const d = JSON.parse(f.data!).data as { key: string; environment: string };
        return `${d.environment}/${d.key}`;
      }),
    ).toEqual([
      'default/ENV_DEFAULT_ONLY',
      'ev-production/ENV_PROD_ONLY',
      'ev-staging/ENV_SHARED',
      'ev-production/ENV_SHARED',
      'ev-staging/ENV_MARKER',
    ]);
  });

  it('refuses a malformed Last-Event-ID and callers without secrets:list', async () => {
    const bad = await fetch(`${t.url}/api/events`, { headers: { ...admin(), 'last-event-id': 'nope' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('Last-Event-ID');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    const denied = await fetch(`${t.url}/api/events`, { headers: { 'x-api-key': k.token } });
    expect(denied.status).toBe(403);
  });

  it('one shared poll per interval feeds every open stream, however many are open', async () => {
    const streams = await Promise.all(
      Array.from({ length: 4 }, () => open({ authorization: `Bearer ${t.token('many')}` })),
    );
    opened.push(...streams);
    for (const s of streams) await s.until((f) => f.some((x) => x.comment === 'heartbeat'));
    // All four fed by the poll (and the previous tests' streams gone).
    await vi.waitFor(() => expect(t.app.eventStreams.stats()).toMatchObject({ open: 4, joined: 4 }), {
      timeout: 60_000,
    });
    // The outbox range queries sent while the streams are open, counted at the driver, and
    // the events each outbox read returned.
    const spy =
      backend === 'postgres' ? vi.spyOn(pg.Client.prototype, 'query') : vi.spyOn(PGlite.prototype, 'query');
    const reads = vi.spyOn(EventsRepository.prototype, 'eventsAfter');
    const before = t.app.eventStreams.stats().polls;
    await vi.waitFor(() => expect(t.app.eventStreams.stats().polls - before).toBeGreaterThanOrEqual(5), {
      timeout: 60_000,
    });
    const polls = t.app.eventStreams.stats().polls - before;
    const text = (c: unknown[]) =>
      typeof c[0] === 'string' ? c[0] : ((c[0] as { text?: string } | undefined)?.text ?? '');
    const rangeQueries = spy.mock.calls.filter((c) =>
      text(c as unknown[]).includes('LEFT JOIN change_events e'),
    );
    // One per poll (one poll may straddle the window's edges), not one per stream per poll.
    expect(rangeQueries.length).toBeGreaterThanOrEqual(polls - 1);
    expect(rangeQueries.length).toBeLessThanOrEqual(polls + 1);
    // And every stream gets an event from one read of the outbox: the streams share the
    // poll, whether or not it counts as one (four streams each polling would read it four times).
    await create('SHARED_FEED');
    for (const s of streams)
      await s.until(() => s.events().some((f) => JSON.parse(f.data!).data.key === 'SHARED_FEED'));
    const readIt = reads.mock.settledResults.filter(
      (r) => r.type === 'fulfilled' && r.value.rows.some((e) => e.key === 'SHARED_FEED'),
    );
    expect(readIt).toHaveLength(1);
  });

  it('a stream resuming from before where the shared poll started joins it without waiting for a new event', async () => {
    // No stream open and the shared poll stopped, so the next stream starts it at its own
    // start position: past the last event (a horizon, not an event's position).
    await vi.waitFor(() => expect(t.app.eventStreams.stats()).toMatchObject({ open: 0, feeding: false }), {
      timeout: 60_000,
    });
    await create('BEFORE_FEED_START');
    const [last] = await t.db.query<{ id: string }>(
      `SELECT xid::text || '-' || seq::text AS id FROM change_events WHERE key = 'BEFORE_FEED_START'`,
    );
    const fresh = await open(admin());
    opened.push(fresh);
    await vi.waitFor(() => expect(t.app.eventStreams.stats()).toMatchObject({ open: 1, joined: 1 }), {
      timeout: 60_000,
    });
    // Resumes from that event: nothing lies between it and the shared poll's position, so the
    // stream has caught up and joins (before: it polled on its own until an event was written).
    const resumed = await open({ ...admin(), 'last-event-id': last!.id });
    opened.push(resumed);
    await vi.waitFor(() => expect(t.app.eventStreams.stats()).toMatchObject({ open: 2, joined: 2 }), {
      timeout: 60_000,
    });
    await create('AFTER_RESUME');
    for (const s of [fresh, resumed])
      await s.until(() => s.events().some((f) => JSON.parse(f.data!).data.key === 'AFTER_RESUME'));
    expect(resumed.events().map((f) => JSON.parse(f.data!).data.key)).toEqual(['AFTER_RESUME']);
  });

  // The horizon below which events are final (src/events/repository.ts eventsAfter) counts
  // only this database's transactions: PostgreSQL only (PGlite has one session).
  if (backend === 'postgres') {
    it('a long transaction in another database does not hold the stream back', async () => {
      const s = await open(admin());
      opened.push(s);
      await s.until((f) => f.some((x) => x.comment === 'heartbeat'));
      await whileOpenInAnotherDatabase(async () => {
        await create('WHILE_OTHER_DB_WAITS');
        // Delivered while that transaction is still open (before: only after it ended).
        await s.until(() => s.events().some((f) => JSON.parse(f.data!).data.key === 'WHILE_OTHER_DB_WAITS'));
      });
    });

    it('a long write transaction in another schema of the same database does not hold the stream back', async () => {
      const s = await open(admin());
      opened.push(s);
      await s.until((f) => f.some((x) => x.comment === 'heartbeat'));
      await whileWritingInAnotherSchema(async () => {
        await create('WHILE_OTHER_SCHEMA_WAITS');
        await s.until(() =>
          s.events().some((f) => JSON.parse(f.data!).data.key === 'WHILE_OTHER_SCHEMA_WAITS'),
        );
      });
    });

    it('an event written late by an older transaction of this database is still streamed, after newer ones', async () => {
      const s = await open(admin());
      opened.push(s);
      await s.until((f) => f.some((x) => x.comment === 'heartbeat'));
      const older = await clientOfSchema(t.schema!);
      try {
        // An xid taken before the newer change's, with a lock in this database (as a writer's
        // first statement takes), and its event written only after the newer one was streamed.
        await older.query('BEGIN');
        await older.query('LOCK TABLE secrets IN ROW EXCLUSIVE MODE');
        await older.query('SELECT pg_current_xact_id()');
        const created = t.app.inject({
          method: 'POST',
          url: '/api/secrets',
          headers: admin(),
          payload: { key: 'NEWER', value: 'v-1' },
        });
        expect((await created).statusCode).toBe(201);
        await older.query(
          `INSERT INTO change_events (type, key, version, actor) VALUES ('secret.updated', 'OLDER_LATE', 1, 'test')`,
        );
        await older.query('COMMIT');
        await s.until(() => s.events().some((f) => JSON.parse(f.data!).data.key === 'OLDER_LATE'));
        const keys = s.events().map((f) => JSON.parse(f.data!).data.key);
        expect(keys).toContain('NEWER');
        // Released in xid order: the older transaction's event first.
        expect(keys.indexOf('OLDER_LATE')).toBeLessThan(keys.indexOf('NEWER'));
      } finally {
        await older.end();
      }
    });
  }

  it('refuses a caller over EVENT_STREAMS_PER_CALLER with 429 (audited); other callers keep streaming', async () => {
    const capped = { authorization: `Bearer ${t.token('capped')}` };
    const streams = await Promise.all(Array.from({ length: 4 }, () => open(capped)));
    opened.push(...streams);
    expect(streams.map((s) => s.res.status)).toEqual([200, 200, 200, 200]);
    const over = await fetch(`${t.url}/api/events`, { headers: capped });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await over.json()) as { message: string }).message).toContain('EVENT_STREAMS_PER_CALLER');
    const rows = await t.db.query<{ action: string; outcome: string }>(
      'SELECT action, outcome FROM audit_log WHERE request_id = $1',
      [over.headers.get('x-request-id')],
    );
    expect(rows).toEqual([{ action: 'events.stream', outcome: 'rate_limited' }]);

    const other = await open({ authorization: `Bearer ${t.token('other-caller')}` });
    opened.push(other);
    expect(other.res.status).toBe(200);
    await create('OTHER_CALLER_SEES');
    await other.until(() => other.events().some((f) => JSON.parse(f.data!).data.key === 'OTHER_CALLER_SEES'));
    await streams[0]!.until(() =>
      streams[0]!.events().some((f) => JSON.parse(f.data!).data.key === 'OTHER_CALLER_SEES'),
    );

    // A closed stream gives its place back.
    streams[0]!.close();
    await vi.waitFor(
      async () => {
        const again = await open(capped);
        opened.push(again);
        expect(again.res.status).toBe(200);
      },
      { timeout: 30_000, interval: 100 },
    );
  });
});
