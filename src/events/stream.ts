import type { Database } from '../db/database.js';
import { errors } from '../errors.js';
import type { Caller } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import { eventPayload } from './dispatcher.js';
import type { EventRow, EventsRepository } from './repository.js';

/**
 * GET /api/events: the change events as Server-Sent Events. Each event's SSE id is its
 * stream position `<xid>-<seq>`; events are released in (xid, seq) order only below the
 * oldest running transaction (repository `eventsAfter`), so a client that reconnects with
 * Last-Event-ID gets every event after the one it saw, none twice, none skipped. A caller
 * sees only the keys it may see (an access key's patterns); webhook.* events only admins.
 * Each connection polls the outbox on its own (one indexed range query per interval).
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

export function createEventStreams(deps: {
  db: Database;
  repo: EventsRepository;
  pollMs: number;
  heartbeatMs: number;
}) {
  const { db, repo } = deps;
  const open = new Set<() => void>();

  // A credential sees the keys it may see, in the environments it covers (events about a
  // subscription, without a key, are for admins).
  const visible = (caller: Caller, e: EventRow) =>
    e.key === null
      ? caller.admin
      : (caller.environments === null || caller.environments.includes(e.environment)) &&
        maySee(caller.visible, e.key);

  return {
    /** The position a new stream starts at: now (what commits from here on). */
    async now(): Promise<Position> {
      const r = await repo.eventsAfter(db, { xid: '0', seq: '0' }, 0);
      return { xid: r.horizon, seq: '0' };
    },

    /** Streams until the client leaves or the app closes. */
    async run(caller: Caller, from: Position, sink: StreamSink): Promise<void> {
      let pos = from;
      let stop = false;
      let wake: () => void = () => {};
      const end = () => {
        stop = true;
        wake();
      };
      open.add(end);
      void sink.closed.then(end);
      const pause = (ms: number) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, ms);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      // The start position as an id-only frame (no event is dispatched): a client that
      // reconnects before any event resumes from here, not from its reconnection.
      sink.write(`retry: ${Math.max(1000, deps.pollMs)}\nid: ${pos.xid}-${pos.seq}\n\n`);
      let lastBeat = Date.now();
      try {
        while (!stop) {
          const { rows } = await repo.eventsAfter(db, pos, BATCH);
          for (const e of rows) {
            pos = { xid: e.xid, seq: e.seq };
            if (!visible(caller, e)) continue;
            sink.write(
              `id: ${e.xid}-${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(eventPayload(e))}\n\n`,
            );
          }
          if (Date.now() - lastBeat >= deps.heartbeatMs) {
            sink.write(': heartbeat\n\n');
            lastBeat = Date.now();
          }
          if (rows.length < BATCH && !stop) await pause(Math.min(deps.pollMs, deps.heartbeatMs));
        }
      } finally {
        open.delete(end);
      }
    },

    /** Ends every open stream (the app is closing). */
    closeAll() {
      for (const end of open) end();
    },
  };
}

export type EventStreams = ReturnType<typeof createEventStreams>;
