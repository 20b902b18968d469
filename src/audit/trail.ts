import type { Logger } from 'pino';
import type { Database, Queryable, Transaction } from '../db/database.js';
import type { ReadRouting } from '../db/read-replicas.js';
import { errors } from '../errors.js';
import type { Caller } from '../identity/caller.js';
import type { AuditAction, AuditEntry } from './entry.js';
import { type AuditOutcome, outcomeOf } from './outcome.js';
import type { AuditRepository } from './repository.js';
import type { AuditWriter, LastUse, ReplicaCheck } from './writer.js';

/**
 * The audited-operation API: every service call that reveals or changes secret material,
 * and every refusal, goes through one of these three, so every attempt leaves exactly one
 * row per secret it touched, with an outcome from the one error->outcome mapping.
 *
 * - change: a write. Its success row is inserted in the write's own transaction (so the
 *   change and its row commit together), as a CTE of the write statement when the work
 *   takes `row` (then it returns audited: true); a refused or failed change rolls back and
 *   its row goes through the group-committed writer.
 * - changeGuarded: a write as one guarded autocommit statement, its row inside it, after a
 *   plain read; falls back to change() (under a row lock) when it keeps losing races.
 * - read: anything that reads (values, versions, listings). The read runs first, then its
 *   rows go through the group-committed writer and are awaited: nothing is returned before
 *   they are committed, and a failed batch fails the read closed (503).
 * - refused: an attempt refused before any service ran (guard, rate limits).
 */

/** One secret a read touched, and what became of it. */
export interface Touched {
  key: string | null;
  version?: number | null | undefined;
  outcome: AuditOutcome;
  /** The secret's environment when it is not the one the caller addresses (compare reads two). */
  environment?: string | undefined;
}

/** The row of one touched secret. */
const touchedEntry = (caller: Caller, action: AuditAction, t: Touched): AuditEntry => {
  const e = auditEntry(caller, action, t.key, t.outcome, t.version ?? null);
  return t.environment === undefined ? e : { ...e, environment: t.environment };
};

export type ReadOutcome<T> = {
  touched: Touched[];
  lastUse?: LastUse | undefined;
  /** Set when a replica answered: the primary confirms it when the rows are committed. */
  check?: ReplicaCheck | undefined;
} & ({ ok: true; result: T } | { ok: false; error: unknown });

export function auditEntry(
  caller: Caller,
  action: AuditAction,
  key: string | null,
  outcome: AuditOutcome,
  version: number | null = null,
): AuditEntry {
  return {
    actor: caller.actor,
    action,
    key,
    version,
    outcome,
    requestId: caller.requestId,
    clientIp: caller.clientIp,
    clientRequestId: caller.clientRequestId,
    environment: caller.environment,
  };
}

export interface AuditTrailDeps {
  db: Database;
  /** Writes go through it so that they raise the caller's read-your-writes fence. */
  reads?: Pick<ReadRouting, 'transaction' | 'fencesWrites'> | undefined;
  repo: AuditRepository;
  writer: AuditWriter;
  log: Logger;
}

/** A change's work in its transaction; `row` is the success row, for a change that inserts it in its own statement. */
export type ChangeWork<T> = (
  tx: Transaction,
  row: (version: number | null) => AuditEntry,
) => Promise<{ result: T; version: number | null; audited?: boolean }>;

/** Guarded attempts before a change takes the row lock (changeGuarded). */
export const GUARDED_TRIES = 3;

/**
 * The audited-operation API (see the top of this file): change, changeGuarded, read,
 * lookup, note and refused.
 */
export class AuditTrail {
  constructor(private readonly deps: AuditTrailDeps) {}

  /** A write on the primary outside `change` (batched jobs): raises the caller's fence too. */
  transaction<T>(caller: Caller, fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.deps.reads ? this.deps.reads.transaction(caller.actor, fn) : this.deps.db.transaction(fn);
  }

  /** Records a refusal; losing its row must not turn the refusal into a 500 (logged instead). */
  async refused(caller: Caller, action: AuditAction, keys: readonly (string | null)[], err: unknown) {
    const outcome = outcomeOf(err);
    try {
      await this.deps.writer.record(keys.map((k) => auditEntry(caller, action, k, outcome)));
    } catch {
      this.deps.log.error({ action, outcome }, 'audit row of a refused attempt could not be written');
    }
  }

  /** Rows for work already committed (a batched job's items); group-committed and awaited. */
  async note(caller: Caller, action: AuditAction, touched: readonly Touched[]): Promise<void> {
    try {
      await this.deps.writer.record(touched.map((t) => touchedEntry(caller, action, t)));
    } catch {
      throw errors.auditUnavailable();
    }
  }

  async change<T>(caller: Caller, action: AuditAction, key: string | null, work: ChangeWork<T>): Promise<T> {
    try {
      return await this.transaction(caller, async (tx) => {
        const done = await work(tx, (v) => auditEntry(caller, action, key, 'success', v));
        if (!done.audited)
          await this.deps.repo.append(tx, auditEntry(caller, action, key, 'success', done.version));
        return done.result;
      });
    } catch (err) {
      await this.refused(caller, action, [key], err);
      throw err;
    }
  }

  /**
   * A change without a transaction of its own: `attempt` reads the row without a lock, then
   * writes it in one statement guarded by the revision it read, the success row inside that
   * statement (autocommit: the change and its row commit together). Two statements and two
   * round trips, against four for BEGIN, a locking read, the write and COMMIT: the round
   * trips are most of an update's cost.
   * `attempt` returns undefined when the guard failed (a concurrent change committed
   * between its read and its write, so nothing was written); it is tried again, and after
   * GUARDED_TRIES losses `locked` runs through change(), under the row lock, so a hot key
   * cannot starve a writer. With read replicas the write must report its commit position
   * for the caller's fence, which needs the transaction: then `locked` runs at once.
   */
  async changeGuarded<T>(
    caller: Caller,
    action: AuditAction,
    key: string,
    attempt: (q: Queryable, row: (version: number | null) => AuditEntry) => Promise<T | undefined>,
    locked: ChangeWork<T>,
  ): Promise<T> {
    if (!this.deps.reads?.fencesWrites()) {
      const row = (v: number | null) => auditEntry(caller, action, key, 'success', v);
      for (let i = 0; i < GUARDED_TRIES; i++) {
        let done: T | undefined;
        try {
          done = await attempt(this.deps.db, row);
        } catch (err) {
          await this.refused(caller, action, [key], err);
          throw err;
        }
        if (done !== undefined) return done;
      }
    }
    return this.change(caller, action, key, locked);
  }

  /**
   * `again`: when the outcome came from a replica (`check`) and the primary contradicts it
   * as its rows are committed, nothing was written and the read is answered by `again`
   * (the primary) instead.
   */
  async read<T>(
    caller: Caller,
    action: AuditAction,
    fallbackKey: string | null,
    run: () => Promise<ReadOutcome<T>>,
    again?: () => Promise<ReadOutcome<T>>,
  ): Promise<T> {
    let done: ReadOutcome<T>;
    try {
      done = await run();
    } catch (err) {
      // The read itself failed (database down): record the attempt if the database lets us.
      await this.refused(caller, action, [fallbackKey], err);
      throw err;
    }
    const rows = done.touched.length
      ? done.touched.map((t) => touchedEntry(caller, action, t))
      : [auditEntry(caller, action, fallbackKey, done.ok ? 'success' : outcomeOf(done.error))];
    let committed: boolean;
    try {
      committed = await this.deps.writer.record(rows, done.ok ? done.lastUse : undefined, done.check);
    } catch {
      // Fail closed: whatever was read is dropped here.
      throw errors.auditUnavailable();
    }
    if (!committed) {
      if (!again) throw errors.auditUnavailable();
      return this.read(caller, action, fallbackKey, again);
    }
    if (!done.ok) throw done.error;
    return done.result;
  }

  /** A read that names no secret and is not refused (a listing): audited as one success row. */
  lookup<T>(caller: Caller, action: AuditAction, key: string | null, fetch: () => Promise<T>): Promise<T> {
    return this.read(caller, action, key, async () => ({ ok: true, touched: [], result: await fetch() }));
  }
}

/** The trail for a caller that builds it alone. */
export function createAuditTrail(deps: AuditTrailDeps): AuditTrail {
  return new AuditTrail(deps);
}
