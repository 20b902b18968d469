import { outcomeOf, withOutcome } from '../audit/outcome.js';
import type { ReadOutcome, Touched } from '../audit/trail.js';
import { errors } from '../errors.js';
import { type Actor, hasScope } from '../identity/actor.js';
import { type Caller, inEnvironment } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import type { BatchEntry } from '../secrets/batch-schemas.js';
import type { BatchService, BatchStatus } from '../secrets/batch-service.js';
import type { BulkRepository } from '../secrets/bulk-repository.js';
import { openSealed } from '../secrets/open-sealed.js';
import { type CompareServiceDeps, checkSecondEnvironment } from './compare.js';

/**
 * POST /api/environments/:from/promote/:to: selected keys' current values copied from one
 * environment to another as ONE batch import into the target (src/secrets/batch-service.ts,
 * a loop over the change door): all or nothing, every entry compare-and-set on the target,
 * by the ETag its caller saw there (GET .../compare gives them) or "absent" (null). Values
 * are read and opened on the server and never returned; each is an audited read of the
 * source (environment.promote), the writes are the target's secret.create/secret.update rows.
 */

export interface PromoteEntry {
  key: string;
  /** The target's ETag the caller saw (compare's etagB), or null: no active secret there. */
  targetEtag: string | null;
}

/** Promote reads the source's values as compare does, then writes through the batch import. */
export interface PromoteServiceDeps extends CompareServiceDeps {
  bulk: BulkRepository;
  batch: BatchService;
}

/** Copies selected keys' values from one environment to another as one batch import. */
export class PromoteService {
  constructor(private readonly deps: PromoteServiceDeps) {}

  async promote(
    from: string,
    to: string,
    entries: readonly PromoteEntry[],
    caller: Caller,
    actor: Actor,
  ): Promise<{ from: string; to: string; results: { key: string; status: BatchStatus }[] }> {
    const keys = entries.map((e) => e.key);
    try {
      if (from === to) {
        throw errors.invalidInput(`Cannot promote from ${from} to itself`, 'Name two different environments');
      }
      await checkSecondEnvironment(to, caller, this.deps.exists);
      // Copying a value reads it: the route asks secrets:write, this asks secrets:read too.
      if (actor.kind === 'access_key' && !hasScope(actor, 'secrets:read')) {
        throw errors.denied(
          `Access key "${actor.name}" lacks the scope secrets:read (promote reads the values it copies)`,
          'Use an access key with secrets:read and secrets:write, or an admin token',
        );
      }
      const outside = keys.filter((k) => !maySee(caller.visible, k));
      if (outside.length > 0) {
        throw withOutcome(
          errors.denied(
            `This access key may not read: ${outside.join(', ')}`,
            'Promote only the keys its patterns cover, or use an admin token',
          ),
          'denied',
        );
      }
    } catch (err) {
      await this.deps.trail.refused(caller, 'environment.promote', keys, err);
      throw err;
    }
    const result = await this.deps.trail.read(
      caller,
      'environment.promote',
      null,
      async (): Promise<ReadOutcome<{ key: string; status: BatchStatus }[]>> => {
        const rows = await this.deps.bulk.readableValuesByKeys(this.deps.db, keys, from);
        const found = new Map(rows.map((r) => [r.key, r]));
        const missing = keys.filter((k) => !found.has(k));
        if (missing.length > 0) {
          return {
            ok: false,
            error: errors.notFound(
              `Secret not found in ${from}: ${missing.join(', ')}`,
              `Only active, unexpired secrets are promoted; see GET /api/environments/${from}/compare/${to}`,
            ),
            touched: missing.map((key) => ({ key, outcome: 'not_found' })),
          };
        }
        const touched: Touched[] = [];
        const batchEntries: BatchEntry[] = [];
        for (const e of entries) {
          const row = found.get(e.key)!;
          let value: string;
          try {
            value = openSealed(
              this.deps.keyring,
              this.deps.log,
              { secretId: row.id, key: row.key, version: row.version },
              row,
            );
          } catch (err) {
            return {
              ok: false,
              error: err,
              touched: [...touched, { key: row.key, version: row.version, outcome: outcomeOf(err) }],
            };
          }
          touched.push({ key: row.key, version: row.version, outcome: 'success' });
          batchEntries.push({
            key: e.key,
            value,
            // A write-only value stays write-only wherever it goes.
            ...(row.write_only ? { isWriteOnly: true } : {}),
            ...(e.targetEtag === null ? { ifNoneMatch: '*' as const } : { ifMatch: e.targetEtag }),
          });
        }
        try {
          const applied = await this.deps.batch.apply(
            { entries: batchEntries, dryRun: false, actor },
            inEnvironment(caller, to),
          );
          return { ok: true, touched, result: applied.results };
        } catch (err) {
          // Nothing was written (the batch is one transaction): the reads are recorded as aborted.
          return { ok: false, error: err, touched: touched.map((t) => ({ ...t, outcome: 'aborted' })) };
        }
      },
    );
    return { from, to, results: result };
  }
}
