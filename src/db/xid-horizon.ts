import type { Queryable } from './database.js';

/**
 * The transaction-id horizon of this schema: every transaction of the service with a smaller
 * id has finished (committed or rolled back), so the rows it wrote are final. The live event
 * stream releases events below it (src/events/repository.ts `eventsAfter`); the audit sealer
 * seals rows below it (src/audit/repository.ts `finishedBelow`). One home for both.
 *
 * It counts only transactions of this schema: those holding a lock on one of its relations.
 * `pg_snapshot_xmin` alone is the oldest transaction of the whole cluster, so one long
 * transaction anywhere (another application's, in another database or another schema of this
 * one) held every live stream and the audit sealing back for as long as it ran.
 *
 * Two statements, in this order, so no row of this schema can be missed:
 * 1. `xmax0` (every xid below it was assigned by then) and the xids of the transactions that
 *    hold a lock on a relation of this schema, read from pg_locks after it (`schemaWriters`).
 *    The service's transactions take their xid by writing (or row-locking, or drawing a
 *    sequence of) a relation of this schema, after taking that relation's lock, and hold the
 *    lock until they end: so every one of them that had its xid by `xmax0` and still runs when
 *    pg_locks is read is in the set.
 * 2. A later statement's own snapshot: its running xids that are in the set, or at or above
 *    `xmax0` (assigned after statement 1: unknown, so counted), bound the horizon; when none
 *    is, everything below the snapshot's xmax is final (`horizonCte`).
 * Why this is enough: take a transaction T of the service, xid x below the horizon. If x is at
 * or above xmax0, T is not running in statement 2's snapshot (it would be counted and the
 * horizon would be at most x). If x is below xmax0, T either had ended when pg_locks was read
 * (then it is not running in statement 2's later snapshot either) or held its lock then, so
 * its xid is in the set and, again, it is not running in statement 2's snapshot. Either way
 * T finished before statement 2's snapshot: its rows are visible to statement 2 and to every
 * later statement of a READ COMMITTED transaction. The order matters: a snapshot taken before
 * pg_locks is read (statement 1's, or a REPEATABLE READ transaction's) could still show T
 * running after T released its locks, and miss it.
 * Prepared transactions are in pg_locks with their locks too (virtualtransaction `-1/xid`).
 * Xids in pg_locks are 32-bit: compared modulo 2^32, which is unique among running ones.
 * Not counted, so never to be done: a transaction that takes its xid without touching this
 * schema (`SELECT pg_current_xact_id()`, or a write elsewhere first) and writes a row of it
 * later. A long write transaction on this schema's own tables still holds the horizon back.
 *
 * PGlite has one session: nothing else runs while these statements do, so the horizon is the
 * snapshot's xmax there, as pg_snapshot_xmin gave too.
 */
export interface SchemaWriters {
  /** xmax of statement 1's snapshot. */
  xmax0: string;
  /** The (32-bit) xids of the transactions holding a lock on a relation of this schema. */
  xids: string[];
}

/** Statement 1: run it before the statement that uses `horizonCte`. */
export async function schemaWriters(q: Queryable): Promise<SchemaWriters> {
  const [w] = await q.query<SchemaWriters>(`SELECT ${schemaWritersColumns}`, [], { name: 'schema_writers' });
  return w!;
}

/**
 * Statement 1's columns `xmax0` and `xids`, for a statement that reads something else too
 * (the fan-out reads its cursor with them: one round trip less).
 */
export const schemaWritersColumns = `pg_snapshot_xmax(pg_current_snapshot())::text AS xmax0,
            ARRAY(SELECT DISTINCT t.transactionid::text FROM pg_locks t
                  WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock'
                    AND EXISTS (SELECT 1 FROM pg_locks r
                                WHERE r.virtualtransaction = t.virtualtransaction
                                  AND r.locktype = 'relation'
                                  AND r.database = (SELECT oid FROM pg_database
                                                    WHERE datname = current_database())
                                  AND r.relation IN (SELECT c.oid FROM pg_class c
                                                     WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n
                                                                        WHERE n.nspname = current_schema())))) AS xids`;

/**
 * Statement 1's result that counts every running transaction of the server: with `xmax0` 0,
 * every xid running in statement 2's snapshot bounds the horizon, which is then that
 * snapshot's xmin (or its xmax when nothing runs). Safe with no statement 1 at all: every
 * transaction with a smaller xid had ended before statement 2's snapshot, so its rows are
 * visible to statement 2. What it costs: any transaction on the server, another
 * application's too, holds it back while it runs. A caller that reads many times a second
 * (the webhook fan-out) uses it while nothing old holds it back, and the schema's writers
 * (pg_locks) otherwise (`HorizonProbe`): reading pg_locks takes every lock-table partition
 * of the server, beside every session's work, each time.
 */
export const EVERY_RUNNING: SchemaWriters = { xmax0: '0', xids: [] };

/**
 * How long a committed row of this schema may wait above the cheap horizon (`EVERY_RUNNING`)
 * before the next read takes the schema's writers from pg_locks instead: longer than this
 * service's own write transactions take under load, so its own writers alone do not switch
 * it, and short enough that a long transaction elsewhere delays rows by about this much
 * plus a poll.
 */
export const HELD_BACK_MS = 200;

/**
 * Which statement 1 a repeated reader takes next (one home for the rule): the cheap one
 * (`EVERY_RUNNING`, no statement) until a read reports that the cheap horizon holds back a
 * row committed HELD_BACK_MS ago or more (a transaction older than it still runs somewhere),
 * then the schema's writers from pg_locks, until a read reports that nothing is held back
 * any longer. Either is correct; the choice only trades a pg_locks scan for delay.
 */
export class HorizonProbe {
  private precise = false;
  /** Reads that take the schema's writers whatever the last read saw (`exactly`). */
  private exact = 0;

  /** Whether the next statement 1 reads pg_locks (`schemaWriters`). */
  get readsLocks(): boolean {
    return this.precise || this.exact > 0;
  }

  /** Statement 1 for the next read: the schema's writers, or every running transaction. */
  writers(q: Queryable): Promise<SchemaWriters> {
    return this.readsLocks ? schemaWriters(q) : Promise.resolve(EVERY_RUNNING);
  }

  /** A read's report (`heldBackSql`): whether the cheap horizon holds back an old committed row. */
  saw(heldBack: boolean) {
    this.precise = heldBack;
  }

  /**
   * Runs fn with every read taking the schema's writers: a read then releases every row
   * committed before it that no transaction of this schema holds back, however young
   * (the dispatcher's `deliverNow`, for tests and benchmarks that deliver what they wrote).
   */
  async exactly<T>(fn: () => Promise<T>): Promise<T> {
    this.exact++;
    try {
      return await fn();
    } finally {
      this.exact--;
    }
  }
}

/**
 * A boolean for statement 2 (given `s`, its snapshot, from `horizonCte`): whether a row of
 * `table` (with columns `xid`, `seq` and `at`, set as the row is inserted, just before its
 * transaction commits), committed and after the position (`xidParam`, `seqParam`), is held
 * back by the cheap horizon (the snapshot's xmin) though it was written HELD_BACK_MS ago or
 * more. One index range (xid, seq) that starts at the horizon, not at the position: the rows
 * just committed, however many committed rows wait below the horizon (a backlog). At most the
 * first 1000 of them, in the index's order (the oldest transactions first): with the order
 * and limit the planner takes the index (without, a generic plan read the whole table).
 */
export const heldBackSql = (table: string, xidParam: string, seqParam: string) =>
  `EXISTS (SELECT 1 FROM (
             SELECT hb.at FROM ${table} hb
             WHERE hb.xid >= GREATEST((SELECT pg_snapshot_xmin(s.snap) FROM s), ${xidParam}::xid8)
               AND (hb.xid > ${xidParam}::xid8 OR hb.seq > ${seqParam}::bigint)
             ORDER BY hb.xid, hb.seq LIMIT 1000) hb
           WHERE hb.at < now() - interval '${HELD_BACK_MS} milliseconds')`;

/**
 * Statement 2's part: `WITH` items `s` (the statement's snapshot) and `h` (its column `x`,
 * the horizon as xid8), given the placeholders that carry `xmax0` and `xids` of statement 1.
 */
export const horizonCte = (xmax0: string, xids: string) =>
  `s AS (SELECT pg_current_snapshot() AS snap),
       h AS (
         SELECT COALESCE(
           (SELECT min(x) FROM s, pg_snapshot_xip(s.snap) AS x
            WHERE x >= ${xmax0}::xid8 OR (x::text::numeric % 4294967296)::text = ANY (${xids}::text[])),
           (SELECT pg_snapshot_xmax(s.snap) FROM s)) AS x
       )`;

const HORIZON = `WITH ${horizonCte('$1', '$2')} SELECT h.x::text AS x FROM h`;

/** Both statements, for a caller that needs only the horizon (its later statements read the rows). */
export async function schemaHorizon(q: Queryable): Promise<string> {
  const w = await schemaWriters(q);
  const rows = await q.query<{ x: string }>(HORIZON, [w.xmax0, w.xids], { name: 'schema_horizon' });
  return rows[0]!.x;
}
