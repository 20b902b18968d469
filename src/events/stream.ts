import type { Database } from '../db/database.js';
import { errors } from '../errors.js';
import type { Caller } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import { PerCallerSlots } from '../per-caller-slots.js';
import { eventPayload } from './dispatcher.js';
import type { EventRow, EventsRepository } from './repository.js';

/**
 * GET /api/events: the change events as Server-Sent Events. Each event's SSE id is its
 * stream position `<xid>-<seq>`; events are released in (xid, seq) order only below the
 * oldest running transaction on this schema (repository `eventsAfter`), so a client that reconnects with
 * Last-Event-ID gets every event after the one it saw, none twice, none skipped. A caller
 * sees only the keys it may see (an access key's patterns); webhook.* events only admins.
 * One shared poller per instance reads the outbox (one indexed range query per interval,
 * however many streams are open) and fans each event out to every stream; a resuming stream
 * first catches up by its own bounded queries, then joins. A caller may hold at most
 * EVENT_STREAMS_PER_CALLER streams open on an instance.
 */

const POSITION = /^(\d{1,20})-(\d{1,19})$/;
const BATCH = 500;

export interface Position {
  xid: string;
  seq: string;
}

export function parsePosition(text: string): Position {
  const m = POSITION.exec(text.trim());
  if (!m)
    throw errors.invalidInput(
      'Last-Event-ID must be an event id this stream sent (<xid>-<seq>)',
      'Reconnect without Last-Event-ID to start from now',
    );
  return { xid: m[1]!, seq: m[2]! };
}

export interface StreamSink {
  write(chunk: string): boolean;
  /** Resolves when the client is gone. */
  closed: Promise<void>;
}

/** Orders two stream positions (xid, then seq). */
const after = (a: Position, b: Position): boolean => {
  const ax = BigInt(a.xid);
  const bx = BigInt(b.xid);
  return ax !== bx ? ax > bx : BigInt(a.seq) > BigInt(b.seq);
};

/** Retry-After for a caller at its open-stream limit: a stream is long-lived, so not soon. */
const STREAMS_RETRY_AFTER_SECONDS = 30;

interface Subscriber {
  caller: Caller;
  /** The last event position this stream passed (sent, or skipped as not visible). */
  pos: Position;
  sink: StreamSink;
  stopped: boolean;
  finish: (err?: unknown) => void;
}

export interface EventStreamsDeps {
  db: Database;
  repo: EventsRepository;
  pollMs: number;
  heartbeatMs: number;
  /** Streams one caller may hold open on this instance (EVENT_STREAMS_PER_CALLER). */
  perCaller: number;
}

// A credential sees the keys it may see, in the environments it covers (events about a
// subscription, without a key, are for admins).
const visible = (caller: Caller, e: EventRow) =>
  e.key === null
    ? caller.admin
    : (caller.environments === null || caller.environments.includes(e.environment)) &&
      maySee(caller.visible, e.key);

/** Sends `e` to `s` if it is past where `s` is (each event once, in order) and `s` may see it. */
function deliver(s: Subscriber, e: EventRow) {
  const p = { xid: e.xid, seq: e.seq };
  if (!after(p, s.pos)) return;
  s.pos = p;
  if (!visible(s.caller, e)) return;
  s.sink.write(`id: ${e.xid}-${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(eventPayload(e))}\n\n`);
}

/** The open event streams of this instance and their one shared poller. */
export class EventStreams {
  private readonly open = new Set<Subscriber>();
  /** Streams fed by the shared poller (caught up with it). */
  private readonly joined = new Set<Subscriber>();
  private readonly perCaller: PerCallerSlots;
  /** The shared poller: where it has read up to, whether it runs, how to wake it early. */
  private feedPos: Position = { xid: '0', seq: '0' };
  private feeding = false;
  private wakeFeed: () => void = () => {};
  private closing = false;
  private polls = 0;

  constructor(private readonly deps: EventStreamsDeps) {
    this.perCaller = new PerCallerSlots(deps.perCaller);
  }

  /** The position a new stream starts at: now (what commits from here on). */
  async now(): Promise<Position> {
    const r = await this.deps.repo.eventsAfter(this.deps.db, { xid: '0', seq: '0' }, 0);
    return { xid: r.horizon, seq: '0' };
  }

  /**
   * Counts one more open stream for the caller, or throws 429 over EVENT_STREAMS_PER_CALLER.
   * Returns the release, to call once when the stream ends (or never starts).
   */
  admit(caller: Caller): () => void {
    const release = this.perCaller.acquire(caller.actor);
    if (!release) {
      throw errors.rateLimited(
        STREAMS_RETRY_AFTER_SECONDS,
        `Too many open event streams: at most ${this.deps.perCaller} per caller (EVENT_STREAMS_PER_CALLER); close one first`,
      );
    }
    return release;
  }

  /** Streams until the client leaves or the app closes. */
  async run(caller: Caller, from: Position, sink: StreamSink): Promise<void> {
    let finish: (err?: unknown) => void = () => {};
    const done = new Promise<void>((resolve, reject) => {
      finish = (err) => (err === undefined ? resolve() : reject(err));
    });
    const s: Subscriber = {
      caller,
      pos: from,
      sink,
      stopped: false,
      finish: (err) => {
        s.stopped = true;
        finish(err);
      },
    };
    this.open.add(s);
    void sink.closed.then(() => s.finish());
    // The start position as an id-only frame (no event is dispatched): a client that
    // reconnects before any event resumes from here, not from its reconnection.
    sink.write(`retry: ${Math.max(1000, this.deps.pollMs)}\nid: ${from.xid}-${from.seq}\n\n`);
    const heartbeat = setInterval(() => sink.write(': heartbeat\n\n'), this.deps.heartbeatMs);
    try {
      await this.join(s);
      await done;
    } finally {
      clearInterval(heartbeat);
      this.joined.delete(s);
      this.open.delete(s);
    }
  }

  /** Ends every open stream (the app is closing). */
  closeAll() {
    this.closing = true;
    for (const s of this.open) s.finish();
    this.wakeFeed();
  }

  /** The shared poller's queries so far, whether it runs, and the streams it feeds. */
  stats() {
    return { polls: this.polls, feeding: this.feeding, joined: this.joined.size, open: this.open.size };
  }

  private pause(ms: number) {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakeFeed = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /**
   * The one poller of this instance: one indexed range query per interval, whatever the
   * number of open streams, each row fanned out to every joined stream (deliver filters by
   * the stream's own position and caller). Runs while some stream is joined. A failed query
   * ends every joined stream (as one stream's failed poll ended it before); clients resume
   * with Last-Event-ID.
   */
  private async feed() {
    this.feeding = true;
    try {
      while (this.joined.size > 0 && !this.closing) {
        this.polls += 1;
        const { rows } = await this.deps.repo.eventsAfter(this.deps.db, this.feedPos, BATCH);
        for (const e of rows) {
          for (const s of this.joined) deliver(s, e);
          this.feedPos = { xid: e.xid, seq: e.seq };
        }
        if (rows.length < BATCH && this.joined.size > 0 && !this.closing) await this.pause(this.deps.pollMs);
      }
    } catch (err) {
      for (const s of this.joined) s.finish(err);
      this.joined.clear();
    } finally {
      this.feeding = false;
    }
  }

  /**
   * Brings `s` up to the shared feed, then joins it. A stream that starts at or past the
   * feed's position joins at once (the feed sends only what is past it); one that resumes
   * from further back (Last-Event-ID) first reads what it missed by its own bounded queries.
   * A query that returns less than a batch has read every event up to where the feed was
   * when it began (those were final by then), so the stream is there too: the feed's
   * position need not be an event's (it starts at its first stream's start, a horizon), and
   * a stream with no event between its position and the feed's joins without waiting for one.
   */
  private async join(s: Subscriber) {
    while (!s.stopped && this.feeding && after(this.feedPos, s.pos)) {
      const target = this.feedPos;
      const { rows } = await this.deps.repo.eventsAfter(this.deps.db, s.pos, BATCH);
      for (const e of rows) deliver(s, e);
      if (rows.length < BATCH && after(target, s.pos)) s.pos = target;
    }
    if (s.stopped) return;
    this.joined.add(s);
    if (!this.feeding) {
      this.feedPos = s.pos;
      void this.feed();
    }
  }
}
