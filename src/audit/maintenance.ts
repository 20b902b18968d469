import type { Logger } from 'pino';
import type { Database, Queryable, Transaction } from '../db/database.js';
import { positionJson, writeArchive } from './archive.js';
import { type ChainPosition, GENESIS_HASH, type SealedRowContent, startPosition } from './chain.js';
import type { AuditRepository } from './repository.js';
import { ROW_CONTENT } from './repository.js';
import { SEALER_LOCK_ID } from './sealer.js';

/** Held while partitions are created or archived, so instances take turns. */
export const MAINTENANCE_LOCK_ID = 7130_0005;
/** Partitions are created this many periods ahead of the current one. */
export const PARTITIONS_AHEAD = 2;
const ROW_PAGE = 5000;

export type PartitionInterval = 'day' | 'month';

export interface Partition {
  name: string;
  lo: Date;
  hi: Date;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function periodStart(d: Date, interval: PartitionInterval): Date {
  return interval === 'day'
    ? new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
    : new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

export function nextPeriod(d: Date, interval: PartitionInterval): Date {
  return interval === 'day'
    ? new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1))
    : new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
}

/** audit_log_d20261123 (a UTC day) or audit_log_m202611 (a UTC month): the name carries the bounds. */
export function partitionFor(d: Date, interval: PartitionInterval): Partition {
  const lo = periodStart(d, interval);
  const ym = `${lo.getUTCFullYear()}${pad(lo.getUTCMonth() + 1)}`;
  const name = interval === 'day' ? `audit_log_d${ym}${pad(lo.getUTCDate())}` : `audit_log_m${ym}`;
  return { name, lo, hi: nextPeriod(lo, interval) };
}

export function parsePartition(name: string): Partition | undefined {
  const m = /^audit_log_(d|m)(\d{4})(\d{2})(\d{2})?$/.exec(name);
  if (!m) return undefined;
  const interval: PartitionInterval = m[1] === 'd' ? 'day' : 'month';
  if ((interval === 'day') !== (m[4] !== undefined)) return undefined;
  const lo = new Date(Date.UTC(Number(m[2]), Number(m[3]) - 1, m[4] ? Number(m[4]) : 1));
  return { name, lo, hi: nextPeriod(lo, interval) };
}

async function listPartitions(q: Queryable): Promise<Partition[]> {
  const rows = await q.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'audit_log'::regclass`,
  );
  return rows
    .map((r) => parsePartition(r.name))
    .filter((p): p is Partition => p !== undefined)
    .sort((a, b) => a.lo.getTime() - b.lo.getTime());
}

/**
 * Creates one partition and moves into it the rows the default partition holds for its
 * range (carried-over rows, or rows written before the partition existed). Rows keep their
 * xid and content, so the seals covering them still match. Names and bounds come from
 * partitionFor, never from input.
 */
async function createPartition(tx: Transaction, p: Partition): Promise<void> {
  const lo = p.lo.toISOString();
  const hi = p.hi.toISOString();
  await tx.exec(`CREATE TABLE ${p.name} (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
  await tx.query(`INSERT INTO ${p.name} SELECT * FROM audit_log_default WHERE at >= $1 AND at < $2`, [
    lo,
    hi,
  ]);
  await tx.query('DELETE FROM audit_log_default WHERE at >= $1 AND at < $2', [lo, hi]);
  await tx.exec(`ALTER TABLE audit_log ATTACH PARTITION ${p.name} FOR VALUES FROM ('${lo}') TO ('${hi}')`);
}

export interface ArchivedUnit {
  dir: string;
  partitions: string[];
  rows: number;
  seals: number;
  endSeal: string;
}

export interface AuditMaintenanceDeps {
  db: Database;
  repo: AuditRepository;
  interval: PartitionInterval;
  /** 0: keep everything. */
  retentionDays: number;
  archiveDir: string;
  log: Logger;
  now?: () => Date;
}

/** The rows with at < before, in id order, a page at a time. */
async function* rowsBefore(q: Queryable, before: Date): AsyncGenerator<SealedRowContent[]> {
  let after = '0';
  for (;;) {
    const page = await q.query<SealedRowContent>(
      `SELECT ${ROW_CONTENT} FROM audit_log WHERE at < $1 AND id > $2::bigint ORDER BY audit_log.id LIMIT $3`,
      [before.toISOString(), after, ROW_PAGE],
    );
    if (page.length > 0) yield page;
    if (page.length < ROW_PAGE) return;
    after = (page[page.length - 1] as SealedRowContent).id;
  }
}

/**
 * The audit table's upkeep, run at start-up and then periodically by one instance at a
 * time: partitions ahead of time, and (with a retention) archiving whole sealed partitions
 * older than the retention before detaching and dropping them.
 */
export class AuditMaintenance {
  constructor(private readonly deps: AuditMaintenanceDeps) {}

  async ensurePartitions(): Promise<string[]> {
    return this.deps.db.transaction(async (tx) => {
      await this.deps.repo.lock(tx, MAINTENANCE_LOCK_ID);
      const existing = await listPartitions(tx);
      const overlaps = (p: Partition) => existing.some((e) => e.lo < p.hi && p.lo < e.hi);
      const wanted = new Map<string, Partition>();
      let d = periodStart(this.now(), this.deps.interval);
      for (let i = 0; i <= PARTITIONS_AHEAD; i++) {
        const p = partitionFor(d, this.deps.interval);
        wanted.set(p.name, p);
        d = p.hi;
      }
      // Periods the default partition holds rows for get their partition too.
      const stray = await tx.query<{ d: string }>(
        `SELECT DISTINCT to_char(date_trunc($1, at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS d FROM audit_log_default`,
        [this.deps.interval],
      );
      for (const r of stray) {
        const p = partitionFor(new Date(`${r.d}T00:00:00.000Z`), this.deps.interval);
        wanted.set(p.name, p);
      }
      const created: string[] = [];
      for (const p of [...wanted.values()].sort((a, b) => a.lo.getTime() - b.lo.getTime())) {
        if (overlaps(p)) continue;
        await createPartition(tx, p);
        existing.push(p);
        created.push(p.name);
      }
      return created;
    });
  }

  /**
   * Archives the oldest run of partitions past the retention, if it can be cut off cleanly:
   * every row in it sealed, and the seals covering its rows a prefix of the live chain that
   * covers nothing else. Usually that is one partition; when a seal straddles a boundary
   * (rows of one transaction range on both sides: the sealer splits at UTC days, so only a
   * range whose rows interleave across it does) the run grows to the next partition.
   */
  private async archiveOne(): Promise<ArchivedUnit | null> {
    if (this.deps.retentionDays <= 0) return null;
    const cutoff = new Date(this.now().getTime() - this.deps.retentionDays * 86_400_000);
    return this.deps.db.transaction(async (tx) => {
      await this.deps.repo.lock(tx, MAINTENANCE_LOCK_ID);
      await this.deps.repo.lock(tx, SEALER_LOCK_ID);
      const all = await listPartitions(tx);
      const candidates: Partition[] = [];
      for (const p of all) {
        if (p.hi > cutoff) break;
        candidates.push(p);
      }
      if (candidates.length === 0) return null;
      const head = (await this.deps.repo.head(tx)) ?? { seal_seq: '0', hash: GENESIS_HASH, xid_to: '0' };
      const anchor = await this.deps.repo.anchor(tx);
      const start: ChainPosition = startPosition(anchor);
      for (let n = 1; n <= candidates.length; n++) {
        const before = (candidates[n - 1] as Partition).hi;
        const iso = before.toISOString();
        const stray = await tx.query('SELECT 1 FROM audit_log_default WHERE at < $1 LIMIT 1', [iso]);
        if (stray.length > 0) return null;
        const unsealed = await tx.query('SELECT 1 FROM audit_log WHERE at < $1 AND xid >= $2::xid8 LIMIT 1', [
          iso,
          head.xid_to,
        ]);
        if (unsealed.length > 0) return null;
        const last = await tx.query<{ m: string | null }>(
          'SELECT max(seq)::text AS m FROM audit_seals WHERE min_at < $1',
          [iso],
        );
        const m = last[0]?.m ?? String(start.seq);
        const spill = await tx.query(
          'SELECT 1 FROM audit_seals WHERE seq <= $1::bigint AND max_at >= $2 LIMIT 1',
          [m, iso],
        );
        if (spill.length > 0) continue;
        const seals = [];
        for (let after = String(start.seq); ; ) {
          const page = await this.deps.repo.sealsAfter(tx, after, m, 1000);
          seals.push(...page);
          if (page.length < 1000) break;
          after = (page[page.length - 1] as { seq: string }).seq;
        }
        const lastSeal = seals[seals.length - 1];
        const end: ChainPosition = lastSeal
          ? {
              seq: BigInt(lastSeal.seq),
              hash: lastSeal.hash,
              xidFrom: lastSeal.xid_from,
              xidTo: lastSeal.xid_to,
              atHi: lastSeal.at_hi,
            }
          : start;
        const parts = candidates.slice(0, n);
        const name = `audit-${(parts[0] as Partition).name.slice(10)}-${(parts[n - 1] as Partition).name.slice(10)}-seals-${start.seq + 1n}-${end.seq}`;
        const written = await writeArchive(
          this.deps.archiveDir,
          name,
          {
            partitions: parts.map((p) => p.name),
            before: iso,
            start: positionJson(start),
            end: positionJson(end),
          },
          seals,
          rowsBefore(tx, before),
        );
        // Only once the archive is on disk and verified: move the anchor, drop what it holds.
        if (end.seq !== start.seq) {
          await this.deps.repo.setAnchor(tx, {
            seal_seq: String(end.seq),
            hash: end.hash,
            xid_from: end.xidFrom,
            xid_to: end.xidTo,
            at_hi: end.atHi,
            archive: name,
          });
          await tx.query('DELETE FROM audit_seals WHERE seq <= $1::bigint', [String(end.seq)]);
        }
        for (const p of parts) {
          await tx.exec(`ALTER TABLE audit_log DETACH PARTITION ${p.name}`);
          await tx.exec(`DROP TABLE ${p.name}`);
        }
        this.deps.log.info(
          {
            archive: written.dir,
            partitions: parts.length,
            rows: written.manifest.rowCount,
            seals: seals.length,
          },
          'audit partitions archived and dropped',
        );
        return {
          dir: written.dir,
          partitions: parts.map((p) => p.name),
          rows: written.manifest.rowCount,
          seals: seals.length,
          endSeal: String(end.seq),
        };
      }
      return null;
    });
  }

  /** Archives every run of partitions that is past the retention and can be cut off. */
  async archiveExpired(): Promise<ArchivedUnit[]> {
    const out: ArchivedUnit[] = [];
    for (;;) {
      const u = await this.archiveOne();
      if (!u) return out;
      out.push(u);
    }
  }

  async run(): Promise<{ created: string[]; archived: ArchivedUnit[] }> {
    const created = await this.ensurePartitions();
    const archived = await this.archiveExpired();
    return { created, archived };
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }
}
