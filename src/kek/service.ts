import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { IntegrityError, rewrapValue, type SealedValue, type ValueIdentity } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Queryable } from '../db/database.js';
import { type CryptoColumns, toSealed } from '../db/sealed-columns.js';
import type { KekRepository, Rewrapped } from './repository.js';
import type { rewrapResult } from './schemas.js';

/**
 * Key rotation: moves every stored data key to the active kid, online.
 *
 * Each batch is one read and one conditional UPDATE (with its audit rows, one short transaction), so readers
 * and writers are never blocked for longer than one statement. Values are never decrypted
 * or re-encrypted: only the DEK is unwrapped with its old KEK and wrapped with the active
 * one. The work is resumable by construction: it only ever selects rows whose kid is not
 * the active one, so after a crash a new run continues with whatever is left.
 */

const FIRST = { secretId: '00000000-0000-0000-0000-000000000000', version: 0 };
// Rows skipped because a concurrent change won the conditional update are retried in a
// new pass; this bounds the passes when something keeps failing (e.g. a corrupted row).
const MAX_PASSES = 5;

/** What a rotation run did (the route's answer: the schema is its one definition). */
export type RewrapResult = z.output<typeof rewrapResult>;

/** A secret a rewrap batch touched: the version it rewrapped, or the one that failed its check. */
export interface RewrapTouched {
  key: string;
  secretId: string;
  version: number;
  outcome: 'success' | 'decrypt_failed';
}

export interface RewrapOptions {
  batchSize?: number;
  /** Called after each committed batch (progress output; tests use it to stop midway). */
  onBatch?: (progress: { batches: number; rewrapped: number }) => void | Promise<void>;
  /**
   * Records the secrets a batch touched (rewrapped, or failed their integrity check), one
   * per secret, on the batch's own transaction: they commit with the batch or not at all.
   * The callers pass the secrets' door (`changes.rotated` in src/secrets/changes.ts).
   */
  record?: (q: Queryable, touched: RewrapTouched[]) => Promise<void>;
}

export interface KekServiceDeps {
  db: Database;
  repo: KekRepository;
  keyring: Keyring;
  log: Logger;
}

export class KekService {
  constructor(private readonly deps: KekServiceDeps) {}

  async rewrap(opts: RewrapOptions = {}): Promise<RewrapResult> {
    const started = performance.now();
    const batchSize = opts.batchSize ?? 500;
    const activeKid = this.deps.keyring.activeKid;
    let rewrapped = 0;
    let batches = 0;
    const failedRows = new Set<string>();
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      let after = FIRST;
      let progressed = false;
      for (;;) {
        const rows = await this.deps.repo.nextToRewrap(this.deps.db, activeKid, after, batchSize);
        if (rows.length === 0) break;
        const out: Rewrapped[] = [];
        const failedNow: RewrapTouched[] = [];
        for (const row of rows) {
          const identity = { secretId: row.secret_id, key: row.key, version: row.version };
          // A failed row is left as it is (still readable by nobody); reported, never logged with data.
          const sealed = this.rewrapRow(identity, row, activeKid, (reason) => {
            if (!failedRows.has(`${row.secret_id}/${row.version}`)) {
              this.deps.log.error(
                { secretKey: row.key, version: row.version, kid: row.kid, reason },
                'rewrap: stored data key failed its integrity check',
              );
            }
            failedRows.add(`${row.secret_id}/${row.version}`);
            failedNow.push({ ...identity, outcome: 'decrypt_failed' });
          });
          if (sealed) out.push({ secretId: row.secret_id, version: row.version, fromKid: row.kid, sealed });
        }
        const record = opts.record;
        const stored = record
          ? await this.deps.db.transaction(async (tx) => {
              const done = await this.deps.repo.storeRewrapped(tx, out);
              const keyOf = new Map(rows.map((r) => [`${r.secret_id}/${r.version}`, r.key]));
              const ok = done.map((v) => ({
                key: keyOf.get(`${v.secretId}/${v.version}`) ?? '',
                secretId: v.secretId,
                version: v.version,
                outcome: 'success' as const,
              }));
              // One row per secret: a batch holding several versions of one secret names it once.
              const seen = new Set<string>();
              const touched = [...ok, ...failedNow].filter((t) => !seen.has(t.key) && seen.add(t.key));
              if (touched.length) await record(tx, touched);
              return done;
            })
          : await this.deps.repo.storeRewrapped(this.deps.db, out);
        const n = stored.length;
        rewrapped += n;
        if (n > 0) progressed = true;
        batches++;
        const last = rows[rows.length - 1]!;
        after = { secretId: last.secret_id, version: last.version };
        await opts.onBatch?.({ batches, rewrapped });
        // Embedded PGlite answers through promises alone, so without this a rewrap run by
        // the server would hold the event loop (and every other request) until it ends.
        await yieldToEventLoop();
      }
      if (!progressed) break;
    }
    rewrapped += await this.rewrapWebhookSecrets(activeKid, batchSize, failedRows);
    const remaining = (await this.deps.repo.rowsPerKid(this.deps.db))
      .filter((r) => r.kid !== activeKid)
      .reduce((sum, r) => sum + r.rows, 0);
    const result = {
      activeKid,
      rewrapped,
      failed: failedRows.size,
      remaining,
      batches,
      durationMs: Math.round(performance.now() - started),
    };
    this.deps.log.info(result, 'rewrap finished');
    return result;
  }

  async status() {
    const perKid = await this.deps.repo.rowsPerKid(this.deps.db);
    const ring = this.deps.keyring.kids();
    const kids = [...new Set([...ring, ...perKid.map((r) => r.kid)])].sort();
    return {
      activeKid: this.deps.keyring.activeKid,
      kids: kids.map((kid) => ({
        kid,
        rows: perKid.find((r) => r.kid === kid)?.rows ?? 0,
        active: kid === this.deps.keyring.activeKid,
        inKeyring: ring.includes(kid),
      })),
      pendingRewrap: perKid
        .filter((r) => r.kid !== this.deps.keyring.activeKid)
        .reduce((s, r) => s + r.rows, 0),
    };
  }

  /**
   * A stored data key re-wrapped to `activeKid`, or undefined when it fails its integrity
   * check (then `onFailure` hears why; any other error is thrown).
   */
  private rewrapRow(
    identity: ValueIdentity,
    row: CryptoColumns,
    activeKid: string,
    onFailure: (reason: string) => void,
  ): SealedValue | undefined {
    try {
      return rewrapValue(this.deps.keyring, identity, toSealed(row), activeKid);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      onFailure(err.message);
      return undefined;
    }
  }

  /**
   * Webhook signing secrets (src/events/webhooks.ts) are sealed like values: their data keys
   * move to the active kid too, in batches, so a retired KEK holds nothing. Not audited per
   * row: they are no secret's change (the run itself is, by its caller).
   */
  private async rewrapWebhookSecrets(activeKid: string, batchSize: number, failed: Set<string>) {
    let moved = 0;
    let after = { subscriptionId: FIRST.secretId, generation: 0 };
    for (;;) {
      const rows = await this.deps.repo.nextWebhookSecretsToRewrap(this.deps.db, activeKid, after, batchSize);
      if (rows.length === 0) return moved;
      const out = [];
      for (const row of rows) {
        const identity = { secretId: row.subscription_id, key: 'webhook', version: row.generation };
        const sealed = this.rewrapRow(identity, row, activeKid, (reason) => {
          this.deps.log.error(
            { webhook: row.subscription_id, generation: row.generation, kid: row.kid, reason },
            'rewrap: a webhook signing secret failed its integrity check',
          );
          failed.add(`webhook:${row.subscription_id}/${row.generation}`);
        });
        if (sealed) {
          out.push({
            subscriptionId: row.subscription_id,
            generation: row.generation,
            fromKid: row.kid,
            sealed,
          });
        }
      }
      moved += await this.deps.repo.storeRewrappedWebhookSecrets(this.deps.db, out);
      const last = rows[rows.length - 1]!;
      after = { subscriptionId: last.subscription_id, generation: last.generation };
      await yieldToEventLoop();
    }
  }
}
