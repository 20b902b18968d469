import { timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/database.js';
import { chainHash, GENESIS_HASH } from './chain.js';
import type { AuditRepository } from './repository.js';

/** The advisory lock every instance agrees on, so only one seals at a time. */
export const SEALER_LOCK_ID = 7130_0004;
const BATCH = 1000;

export interface VerifyResult {
  intact: boolean;
  /** Sealed rows checked. */
  checked: number;
  /** The id of the first row whose hash does not match, or null. */
  firstBrokenId: string | null;
  reason: string | null;
}

/**
 * Seals the audit chain in id order, in batches, off the hot path: writers insert rows
 * unsealed; this assigns seal_seq and hash. Rows that commit late (a smaller id committed
 * after a larger one was sealed) simply join the chain at its end, since the chain order
 * is seal_seq, not id.
 */
export function createAuditSealer(db: Database, repo: AuditRepository) {
  async function sealBatch(wait: boolean): Promise<number> {
    return db.transaction(async (tx) => {
      if (wait) await repo.lockSealer(tx, SEALER_LOCK_ID);
      else if (!(await repo.tryLockSealer(tx, SEALER_LOCK_ID))) return 0;
      const head = await repo.head(tx);
      let seq = BigInt(head?.seal_seq ?? '0');
      let prev: Buffer = head?.hash ?? GENESIS_HASH;
      const rows = await repo.unsealed(tx, BATCH);
      if (rows.length === 0) return 0;
      const ids: string[] = [];
      const seqs: string[] = [];
      const hashes: Buffer[] = [];
      for (const r of rows) {
        seq += 1n;
        prev = chainHash(prev, r, String(seq));
        ids.push(r.id);
        seqs.push(String(seq));
        hashes.push(prev);
      }
      await repo.seal(tx, ids, seqs, hashes);
      await repo.setHead(tx, String(seq), prev);
      return rows.length;
    });
  }

  return {
    /** Seals every pending row. wait=false skips the run when another instance holds the lock. */
    async sealPending(wait = true): Promise<number> {
      let total = 0;
      for (;;) {
        const n = await sealBatch(wait);
        total += n;
        if (n < BATCH) return total;
      }
    },

    /** Seals pending rows, then walks the chain and reports the first row that does not match. */
    async verify(): Promise<VerifyResult> {
      await this.sealPending(true);
      let prev: Buffer = GENESIS_HASH;
      let expectedSeq = 0n;
      let checked = 0;
      let after = '0';
      const broken = (id: string | null, reason: string): VerifyResult => ({
        intact: false,
        checked,
        firstBrokenId: id,
        reason,
      });
      // Check up to the head as it is now: rows another instance seals meanwhile are
      // beyond it and belong to the next verification.
      const head = await repo.head(db);
      const end = head ? BigInt(head.seal_seq) : null;
      walk: for (;;) {
        const rows = await repo.sealedAfter(db, after, BATCH);
        for (const r of rows) {
          if (end !== null && expectedSeq >= end) break walk;
          expectedSeq += 1n;
          const seq = r.seal_seq ?? '';
          if (seq !== String(expectedSeq)) {
            return broken(
              r.id,
              `chain position ${expectedSeq} is missing: a row before this one was removed`,
            );
          }
          const want = chainHash(prev, r, seq);
          if (!r.hash || r.hash.length !== 32 || !timingSafeEqual(r.hash, want)) {
            return broken(r.id, 'the row content or the row before it was changed, removed or reordered');
          }
          prev = r.hash;
          checked += 1;
          after = seq;
        }
        if (rows.length < BATCH) break;
      }
      if (head && (head.seal_seq !== String(expectedSeq) || !head.hash.equals(prev))) {
        return broken(
          null,
          `the chain ends at position ${expectedSeq} but was sealed up to ${head.seal_seq}: rows were removed from its end`,
        );
      }
      return { intact: true, checked, firstBrokenId: null, reason: null };
    },
  };
}

export type AuditSealer = ReturnType<typeof createAuditSealer>;
