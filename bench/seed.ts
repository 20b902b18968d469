import { randomBytes, randomUUID } from 'node:crypto';
import { sealValue } from '../src/crypto/envelope.js';
import type { Keyring } from '../src/crypto/keyring.js';
import type { Database } from '../src/db/database.js';

/** Seeded secrets are named BENCH_<n>, n zero-padded so keys sort like their insertion order. */
export const seededKey = (n: number) => `BENCH_${String(n).padStart(7, '0')}`;

// 1000 rows x 9 parameters stays well under PostgreSQL's 65535-parameter limit.
const BATCH = 1000;

/**
 * Adds secrets `from` .. `to - 1` with plain multi-row INSERTs (the same on PostgreSQL and
 * PGlite), each value sealed for real with its own data key, one transaction per batch.
 * Going through the HTTP API instead would take hours for 1M rows and measure nothing new.
 */
export async function seed(db: Database, keyring: Keyring, from: number, to: number): Promise<void> {
  for (let start = from; start < to; start += BATCH) {
    const end = Math.min(start + BATCH, to);
    const secretParams: unknown[] = [];
    const versionParams: unknown[] = [];
    const secretRows: string[] = [];
    const versionRows: string[] = [];
    for (let n = start; n < end; n++) {
      const id = randomUUID();
      const key = seededKey(n);
      const sealed = sealValue(
        keyring,
        { secretId: id, key, version: 1 },
        `sk_bench_${randomBytes(16).toString('hex')}`,
      );
      secretParams.push(id, key);
      secretRows.push(`($${secretParams.length - 1}::uuid, $${secretParams.length}, 1)`);
      const base = versionParams.length;
      const s = sealed;
      versionParams.push(id, s.format, s.kid, s.wrappedDek, s.dekIv, s.dekTag, s.iv, s.tag, s.ciphertext);
      versionRows.push(`(${Array.from({ length: 9 }, (_, i) => `$${base + i + 1}`).join(', ')}, 1)`);
    }
    await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO secrets (id, key, current_version) VALUES ${secretRows.join(', ')}`,
        secretParams,
      );
      await tx.query(
        `INSERT INTO secret_versions (secret_id, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext, version)
         VALUES ${versionRows.join(', ')}`,
        versionParams,
      );
    });
  }
}
