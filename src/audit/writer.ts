import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import type { AuditEntry } from './entry.js';
import { AUDIT_COLUMNS, columnsFor, entryParams, storedEnvironment } from './repository.js';

const AUDIT_COLUMN_NAMES = AUDIT_COLUMNS.split(', ');

/**
 * Group commit for audit rows written outside a change's own transaction: value reads,
 * listings, exports, renders and refusals. Concurrent requests hand their rows to one
 * batch; the batch is one statement (a multi-row INSERT from unnest, plus the batch's
 * lastUsedAt/lastUsedBy stamps through the ReadMarks hook), so one round trip and one commit
 * serve every request in it. A request's promise settles only once its rows are committed,
 * so a value never leaves before its row exists. A batch that fails because of one
 * request's rows is split until that request fails alone (`write`); a batch that fails for
 * a shared reason (the database is down) fails every waiter (503), returning no value.
 *
 * Hand-written rather than a library: the batching is twenty lines around one SQL
 * statement, and its guarantees (settle after commit, fail every waiter) are the point.
 *
 * Scheduling: the first queued row waits `windowMs` for others (or until `maxRows` are
 * queued), then its batch is sent. At most `concurrency` batches are in flight; when all are
 * busy, new rows queue and go out as soon as one finishes, so batches grow with load
 * instead of the number of statements, and commit latency (WAL flush) overlaps across the
 * batches in flight. A request with more rows than `maxRows` is written at once as its own
 * statement, outside the slots, so one caller's large row set never delays the batches that
 * other callers' single rows wait in. On PGlite's single connection a batch is one statement
 * in its queue like any other, so other work is not starved.
 */

/** A read's lastUsedAt/lastUsedBy stamp, written with the batch that holds its audit row. */
export interface LastUse {
  secretId: string;
  by: string;
}

/**
 * What a read served by a replica saw, for the primary to confirm in the batch statement
 * (src/db/read-replicas.ts explains the routing). `revision` null: no such secret.
 * `readable`: the replica found it active and unexpired (then the primary must, by its own
 * clock, too). A mismatch means the replica was behind: the request's rows are not written
 * and the read is answered again from the primary.
 */
export interface ReplicaCheck {
  key: string;
  /** The secret's environment (absent: default). */
  environment?: string | undefined;
  revision: string | null;
  readable: boolean;
}

/**
 * The narrow hook through which a read's batch stamps lastUsedAt/lastUsedBy and confirms
 * replica reads, in the batch's own statement: SQL owned by the secrets module
 * (src/secrets/read-marks.ts), so that audit knows its rows and not the secrets table.
 */
export interface ReadMarks {
  /** CTEs that stamp the secrets named by a preceding `used (id, by)` CTE. */
  stampLastUsed: string;
  /** A SELECT of the `w` of `checks` (rows w, key, rev, readable, env) the primary contradicts. */
  staleReads: (checks: string) => string;
}

interface Waiter {
  rows: AuditEntry[];
  lastUse: LastUse | undefined;
  check: ReplicaCheck | undefined;
  resolve: (committed: boolean) => void;
  reject: (err: unknown) => void;
}

export interface AuditBatchStats {
  batches: number;
  rows: number;
  maxRows: number;
  /** How many batches had n rows, for n in powers of two (1, 2, 4, ... 4096+). */
  histogram: Record<string, number>;
  failures: number;
}

/**
 * Whether a failed statement failed because of some row's content rather than something all
 * rows share: SQLSTATE class 22 (data exception: a value the column cannot hold), 23
 * (integrity constraint) and 54 (program limit: an index row too large). Everything else
 * (connection loss, shutdown, out of memory, a missing table) fails the whole batch.
 */
export const rowSpecific = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
};

/**
 * The batch when none of its reads found its secret's stamp due (the usual case: a secret
 * read all the time is stamped once a minute): the multi-row INSERT alone, without the join
 * against `secrets` that rewrites stale stamps.
 */
const ROW_ARRAYS =
  '$1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::boolean[]';
const INSERT_ROWS = `INSERT INTO audit_log (${AUDIT_COLUMNS})
SELECT * FROM unnest(${ROW_ARRAYS})`;

const insertBatch = (marks: ReadMarks) => `WITH used AS (
  SELECT u.id, u.by FROM unnest($9::uuid[], $10::text[]) AS u (id, by)
), ${marks.stampLastUsed}
INSERT INTO audit_log (${AUDIT_COLUMNS})
SELECT * FROM unnest(${ROW_ARRAYS})`;

/**
 * The same two when some row names an environment other than default (storedEnvironment in
 * src/audit/repository.ts): the environment column as one more array, the last parameter.
 * A batch of default's rows only (the InsForge API) sends the statements above, unchanged.
 */
const INSERT_ROWS_ENV = `INSERT INTO audit_log (${columnsFor(true)})
SELECT * FROM unnest(${ROW_ARRAYS}, $9::text[])`;

const insertBatchEnv = (marks: ReadMarks) => `WITH used AS (
  SELECT u.id, u.by FROM unnest($9::uuid[], $10::text[]) AS u (id, by)
), ${marks.stampLastUsed}
INSERT INTO audit_log (${columnsFor(true)})
SELECT * FROM unnest(${ROW_ARRAYS}, $11::text[])`;

/**
 * The same batch when some of its reads came from a replica. `stale` lists the waiters
 * (by index) whose replica answer the primary contradicts (ReadMarks.staleReads). Their
 * rows and stamps are left out, and the statement returns their indexes. One statement and
 * one round trip still.
 */
const insertBatchChecked = (marks: ReadMarks) => `WITH stale AS (
${marks.staleReads('unnest($11::int[], $12::text[], $13::bigint[], $14::boolean[], $17::text[]) AS e (w, key, rev, readable, env)')}
), used AS (
  SELECT DISTINCT ON (u.id) u.id, u.by FROM unnest($9::uuid[], $10::text[], $16::int[]) AS u (id, by, w)
  WHERE u.w NOT IN (SELECT w FROM stale)
), ${marks.stampLastUsed}, inserted AS (
  INSERT INTO audit_log (${columnsFor(true)})
  SELECT a, b, c, d, e, f, g, h, i
  FROM unnest(${ROW_ARRAYS}, $15::int[], $18::text[])
    AS r (a, b, c, d, e, f, g, h, w, i)
  WHERE r.w NOT IN (SELECT w FROM stale)
)
SELECT w FROM stale`;

export interface AuditWriterOptions {
  db: Database;
  log: Logger;
  windowMs: number;
  maxRows: number;
  /** Batches in flight at once (1 on PGlite, whose one connection runs them in turn anyway). */
  concurrency: number;
  /** What a read's batch writes and checks on the secrets (src/secrets/read-marks.ts). */
  marks: ReadMarks;
}

/** The rows as one array per column (AUDIT_COLUMNS order), each value as entryParams gives it. */
const columns = (rows: AuditEntry[]) => {
  const params = rows.map(entryParams);
  return AUDIT_COLUMN_NAMES.map((_, i) => params.map((p) => p[i]));
};

/**
 * The group-committed writer: rows that arrive together share one statement, and each
 * request is answered when its batch commits.
 */
export class AuditWriter {
  private readonly insertBatch: string;
  private readonly insertBatchEnv: string;
  private readonly insertBatchChecked: string;
  private queue: Waiter[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly counts: AuditBatchStats = { batches: 0, rows: 0, maxRows: 0, histogram: {}, failures: 0 };
  private readonly inFlight = new Set<Promise<void>>();
  /** Oversized requests' statements, written apart from the batches (record). */
  private readonly alone = new Set<Promise<void>>();
  /** The timer's callback: flushNow on this writer. */
  private readonly flushOnTimer = () => this.flushNow();

  constructor(private readonly deps: AuditWriterOptions) {
    this.insertBatch = insertBatch(deps.marks);
    this.insertBatchEnv = insertBatchEnv(deps.marks);
    this.insertBatchChecked = insertBatchChecked(deps.marks);
  }

  /**
   * Queues rows (and a read's lastUsed stamp) for the next batch; resolves once they are
   * committed, rejects with a 503 AppError when their batch fails. With `check` (a read a
   * replica answered), resolves false when the primary contradicts it: nothing was written.
   */
  record(rows: AuditEntry[], lastUse?: LastUse, check?: ReplicaCheck): Promise<boolean> {
    if (rows.length === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve, reject) => {
      if (rows.length > this.deps.maxRows) {
        // A request with more rows than a batch holds (an export of many secrets, a refused
        // import) is its own statement at once, outside the `concurrency` slots: the small
        // rows of other requests never queue behind it.
        const p = this.write([{ rows, lastUse, check, resolve, reject }]).finally(() => this.alone.delete(p));
        this.alone.add(p);
        return;
      }
      this.queue.push({ rows, lastUse, check, resolve, reject });
      this.queuedRows += rows.length;
      this.schedule();
    });
  }

  /** Writes whatever is queued and waits for it (shutdown). */
  async flush(): Promise<void> {
    this.flushNow();
    while (this.inFlight.size > 0 || this.queue.length > 0 || this.alone.size > 0) {
      await Promise.all([...this.inFlight, ...this.alone]);
      this.flushNow();
    }
  }

  stats(): AuditBatchStats {
    return { ...this.counts, histogram: { ...this.counts.histogram } };
  }

  private counted(n: number) {
    const stats = this.counts;
    stats.batches += 1;
    stats.rows += n;
    stats.maxRows = Math.max(stats.maxRows, n);
    const bucket = String(2 ** Math.min(12, Math.floor(Math.log2(n))));
    stats.histogram[bucket] = (stats.histogram[bucket] ?? 0) + 1;
  }

  /** Takes waiters up to maxRows rows (a waiter is never split; one larger than maxRows never queues). */
  private take(): Waiter[] {
    const queue = this.queue;
    let n = 0;
    let i = 0;
    while (i < queue.length && (i === 0 || n + queue[i]!.rows.length <= this.deps.maxRows)) {
      n += queue[i]!.rows.length;
      i += 1;
    }
    const batch = queue.slice(0, i);
    this.queue = queue.slice(i);
    this.queuedRows -= n;
    return batch;
  }

  /** A batch holding replica reads: checked against the primary in the same statement. */
  private async writeChecked(batch: Waiter[], rows: AuditEntry[]): Promise<Set<number>> {
    const checks = batch.flatMap((w, i) => (w.check ? [{ i, ...w.check }] : []));
    const rowWaiter = batch.flatMap((w, i) => w.rows.map(() => i));
    const used = batch.flatMap((w, i) => (w.lastUse ? [{ i, ...w.lastUse }] : []));
    const stale = await this.deps.db.query<{ w: number }>(
      this.insertBatchChecked,
      [
        ...columns(rows),
        used.map((u) => u.secretId),
        used.map((u) => u.by),
        checks.map((c) => c.i),
        checks.map((c) => c.key),
        checks.map((c) => c.revision),
        checks.map((c) => c.readable),
        rowWaiter,
        used.map((u) => u.i),
        checks.map((c) => c.environment ?? DEFAULT_ENVIRONMENT),
        rows.map(storedEnvironment),
      ],
      { name: 'audit_batch_checked' },
    );
    return new Set(stale.map((r) => r.w));
  }

  /** Writes the batch in one statement; throws what the database said. */
  private async attempt(batch: Waiter[]): Promise<void> {
    const db = this.deps.db;
    const rows = batch.flatMap((w) => w.rows);
    if (batch.some((w) => w.check)) {
      const stale = await this.writeChecked(batch, rows);
      this.counted(rows.length);
      batch.forEach((w, i) => {
        w.resolve(!stale.has(i));
      });
      return;
    }
    const lastUse = new Map<string, string>();
    for (const w of batch) if (w.lastUse) lastUse.set(w.lastUse.secretId, w.lastUse.by);
    const envs = rows.map(storedEnvironment);
    const withEnv = envs.some((e) => e !== null);
    if (lastUse.size === 0) {
      if (withEnv) await db.query(INSERT_ROWS_ENV, [...columns(rows), envs], { name: 'audit_rows_env' });
      else await db.query(INSERT_ROWS, columns(rows), { name: 'audit_rows' });
    } else {
      const used = [[...lastUse.keys()], [...lastUse.values()]];
      if (withEnv)
        await db.query(this.insertBatchEnv, [...columns(rows), ...used, envs], { name: 'audit_batch_env' });
      else await db.query(this.insertBatch, [...columns(rows), ...used], { name: 'audit_batch' });
    }
    this.counted(rows.length);
    for (const w of batch) w.resolve(true);
  }

  /**
   * A batch that failed for a reason belonging to some row (rowSpecific) is split in halves
   * and each half written on its own, down to the one request whose rows cannot be stored:
   * only that request fails closed, the others' rows are committed as if nothing happened.
   * A shared cause (connection lost, database down) fails every waiter at once, as before.
   * The statement is all-or-nothing, so a failed attempt wrote nothing and the halves
   * cannot duplicate a row.
   */
  private async write(batch: Waiter[]): Promise<void> {
    try {
      await this.attempt(batch);
    } catch (err) {
      if (batch.length > 1 && rowSpecific(err)) {
        const half = Math.ceil(batch.length / 2);
        await this.write(batch.slice(0, half));
        await this.write(batch.slice(half));
        return;
      }
      this.counts.failures += 1;
      // Class and code only: a driver error can quote parameters.
      this.deps.log.error(
        {
          errName: (err as Error).name,
          errCode: (err as { code?: unknown }).code,
          rows: batch.reduce((n, w) => n + w.rows.length, 0),
        },
        'audit batch failed; its requests fail closed',
      );
      const failure = errors.auditUnavailable();
      for (const w of batch) w.reject(failure);
    }
  }

  /** Sends one batch from the queue; when it settles, whatever queued meanwhile goes at once. */
  private launch() {
    const p = this.write(this.take()).finally(() => {
      this.inFlight.delete(p);
      if (this.queue.length > 0) this.schedule(true);
    });
    this.inFlight.add(p);
  }

  private flushNow() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queue.length > 0 && this.inFlight.size < this.deps.concurrency) this.launch();
  }

  /**
   * `waited`: the queued rows already waited for a batch in flight, so they go as soon as a
   * slot is free instead of opening a new window.
   */
  private schedule(waited = false) {
    // All slots busy: a finishing batch picks the queue up.
    if (this.inFlight.size >= this.deps.concurrency) return;
    if (waited || this.queuedRows >= this.deps.maxRows || this.deps.windowMs === 0) return this.flushNow();
    this.timer ??= setTimeout(this.flushOnTimer, this.deps.windowMs);
  }
}

/** The writer for a caller that builds it alone (tests, benchmarks). */
export function createAuditWriter(opts: AuditWriterOptions): AuditWriter {
  return new AuditWriter(opts);
}
