import type { z } from 'zod';
import type { Database, Transaction } from '../db/database.js';
import {
  type ChainPosition,
  checkSeal,
  digested,
  GENESIS_HASH,
  positionAfter,
  rowDigest,
  type SealedRowContent,
  sealHash,
  shortDigests,
  startPosition,
} from './chain.js';
import type { AuditRepository, NewSeal } from './repository.js';
import type { chainVerification } from './schemas.js';

/** The advisory lock every instance agrees on, so only one seals at a time. */
export const SEALER_LOCK_ID = 7130_0004;
/** About this many rows per seal (a seal never splits one transaction's rows). */
export const SEAL_MAX_ROWS = 5000;
const SEAL_PAGE = 100;
const VERIFY_WAIT_MS = 5000;

/** What a verification found (the route's answer: the schema is its one definition). */
export type VerifyResult = z.output<typeof chainVerification>;

const dayStart = (day: string) => `${day}T00:00:00.000Z`;

export interface AuditSealerDeps {
  db: Database;
  repo: AuditRepository;
}

/**
 * Seals the audit chain off the hot path without touching a row. A round takes the range of
 * transaction ids from the chain head up to the oldest transaction of this schema still
 * running (repository `finishedBelow`, src/db/xid-horizon.ts): every transaction of the
 * service below it has finished, so the rows in the range are final, and a row that commits
 * late has an xid above it and falls into a later range. The
 * range's rows (in id order) are split by UTC day, one seal per day, so that a day's
 * partition can later be archived with exactly the seals that cover it.
 */
export class AuditSealer {
  constructor(private readonly deps: AuditSealerDeps) {}

  private async sealRange(tx: Transaction): Promise<{ rows: number; more: boolean }> {
    const head = (await this.deps.repo.head(tx)) ?? { seal_seq: '0', hash: GENESIS_HASH, xid_to: '0' };
    const finished = await this.deps.repo.finishedBelow(tx);
    if (BigInt(finished) <= BigInt(head.xid_to)) return { rows: 0, more: false };
    const cut = await this.deps.repo.xidAfterRows(tx, head.xid_to, finished, SEAL_MAX_ROWS);
    const more = cut !== undefined && BigInt(cut) > BigInt(head.xid_to);
    const xidTo = more ? cut : finished;
    const rows = await this.deps.repo.rowsIn(tx, { xidFrom: head.xid_to, xidTo, atLo: null, atHi: null });
    // An empty range is not sealed: the next seal simply starts from the same place.
    if (rows.length === 0) return { rows: 0, more: false };
    const byDay = new Map<string, SealedRowContent[]>();
    for (const r of rows) {
      const day = r.at_text.slice(0, 10);
      const list = byDay.get(day);
      if (list) list.push(r);
      else byDay.set(day, [r]);
    }
    const days = [...byDay.keys()].sort();
    let seq = BigInt(head.seal_seq);
    let prev = head.hash;
    for (let i = 0; i < days.length; i++) {
      const part = byDay.get(days[i] as string) as SealedRowContent[];
      const next = days[i + 1];
      seq += 1n;
      const header = {
        seq: String(seq),
        xidFrom: head.xid_to,
        xidTo,
        atLo: i === 0 ? null : dayStart(days[i] as string),
        atHi: next === undefined ? null : dayStart(next),
        rowCount: part.length,
      };
      const digests = part.map(rowDigest);
      const hash = sealHash(prev, header, digests);
      const ats = part.map((r) => r.at_text).sort();
      const seal: NewSeal = {
        ...header,
        firstId: (part[0] as SealedRowContent).id,
        lastId: (part[part.length - 1] as SealedRowContent).id,
        minAt: ats[0] as string,
        maxAt: ats[ats.length - 1] as string,
        rowDigests: shortDigests(digests),
        prevHash: prev,
        hash,
      };
      await this.deps.repo.insertSeal(tx, seal);
      prev = hash;
    }
    await this.deps.repo.setHead(tx, { seal_seq: String(seq), hash: prev, xid_to: xidTo });
    return { rows: rows.length, more };
  }

  private async sealRound(wait: boolean): Promise<{ rows: number; more: boolean }> {
    return this.deps.db.transaction(async (tx) => {
      if (wait) await this.deps.repo.lock(tx, SEALER_LOCK_ID);
      else if (!(await this.deps.repo.tryLock(tx, SEALER_LOCK_ID))) return { rows: 0, more: false };
      return this.sealRange(tx);
    });
  }

  /** Seals every finished row. wait=false skips the run when another instance holds the lock. */
  async sealPending(wait = true): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await this.sealRound(wait);
      total += r.rows;
      if (!r.more) return total;
    }
  }

  /**
   * Seals what is finished, then walks the seals from the archived anchor (or genesis) to
   * the chain head and reports the first row or seal that does not match.
   */
  async verify(): Promise<VerifyResult> {
    // Cover every row committed before this call: wait (briefly) until every transaction
    // of this schema that had started by now has finished, then seal. One left open longer
    // than that holds sealing back; those rows are verified next time.
    const target = BigInt(await this.deps.repo.nextXid(this.deps.db));
    const deadline = Date.now() + VERIFY_WAIT_MS;
    while (BigInt(await this.deps.repo.finishedBelow(this.deps.db)) < target && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.sealPending(true);
    const anchor = await this.deps.repo.anchor(this.deps.db);
    let pos: ChainPosition = startPosition(anchor);
    const anchorSeal = String(pos.seq);
    let checked = 0;
    let seals = 0;
    const broken = (b: { firstBrokenId: string | null; firstBrokenSeal: string | null; reason: string }) => ({
      intact: false,
      checked,
      seals,
      anchorSeal,
      ...b,
    });
    if (anchor) {
      const forged = await this.deps.repo.rowBelowAnchor(this.deps.db, anchor);
      if (forged !== undefined) {
        return broken({
          firstBrokenId: forged,
          firstBrokenSeal: null,
          reason: `the row claims a transaction whose seals were archived (${anchor.archive}): it was inserted afterwards`,
        });
      }
    }
    // Check up to the head as it is now: seals another instance adds meanwhile belong to
    // the next verification.
    const head = (await this.deps.repo.head(this.deps.db)) ?? {
      seal_seq: '0',
      hash: GENESIS_HASH,
      xid_to: '0',
    };
    for (;;) {
      const page = await this.deps.repo.sealsAfter(this.deps.db, String(pos.seq), head.seal_seq, SEAL_PAGE);
      for (const s of page) {
        const rows = await this.deps.repo.rowsIn(this.deps.db, {
          xidFrom: s.xid_from,
          xidTo: s.xid_to,
          atLo: s.at_lo,
          atHi: s.at_hi,
        });
        const b = checkSeal(pos, s, rows.map(digested));
        if (b) return broken(b);
        pos = positionAfter(s);
        checked += rows.length;
        seals += 1;
      }
      if (page.length < SEAL_PAGE) break;
    }
    if (String(pos.seq) !== head.seal_seq || !pos.hash.equals(head.hash) || pos.atHi !== null) {
      return broken({
        firstBrokenId: null,
        firstBrokenSeal: String(pos.seq + 1n),
        reason: `the chain ends at seal ${pos.seq} but was sealed up to ${head.seal_seq}: seals were removed from its end`,
      });
    }
    return {
      intact: true,
      checked,
      seals,
      firstBrokenId: null,
      firstBrokenSeal: null,
      reason: null,
      anchorSeal,
    };
  }
}
