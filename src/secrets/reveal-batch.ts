import DataLoader from 'dataloader';
import type { Queryable } from '../db/database.js';
import type { RevealRow, SecretsRepository } from './repository.js';

/** Reads sent in one statement at most (a bound on the statement's arrays, not on waiting). */
export const REVEAL_BATCH_MAX = 128;

interface Wanted {
  environment: string;
  key: string;
  version: number | null;
}

/**
 * Value reads that arrive together share one SELECT (DataLoader's batching, one loader per
 * connection pool: the primary, each replica). A read's statement is most of its cost in
 * both processes (sending it, waking PostgreSQL, parsing a RowDescription and DataRow back);
 * shared, those costs are paid once per batch.
 *
 * The batch is dispatched by setImmediate: after every request that this turn of the event
 * loop read off its sockets has asked, and never later, so a lone read waits for nothing and
 * no timer is involved. Nothing is cached: each batch is a fresh SELECT sent after every read
 * in it arrived, so a read sees every write acknowledged before it was received. Equal
 * (environment, key, version) triples in one batch are asked once and answered from the same row.
 */
export class RevealBatcher {
  private readonly loaders = new WeakMap<Queryable, DataLoader<Wanted, RevealRow | undefined, string>>();

  constructor(private readonly repo: SecretsRepository) {}

  /** The row for key in environment (at version, or its current one); undefined when it does not exist there. */
  revealRow(
    q: Queryable,
    environment: string,
    key: string,
    version?: number,
  ): Promise<RevealRow | undefined> {
    return this.loaderFor(q).load({ environment, key, version: version ?? null });
  }

  private loaderFor(q: Queryable) {
    let loader = this.loaders.get(q);
    if (!loader) {
      loader = new DataLoader((wanted: readonly Wanted[]) => this.revealMany(q, wanted), {
        cache: false,
        maxBatchSize: REVEAL_BATCH_MAX,
        batchScheduleFn: (dispatch) => setImmediate(dispatch),
      });
      this.loaders.set(q, loader);
    }
    return loader;
  }

  /** One batch: its distinct wanted rows in one SELECT, each read answered from its row. */
  private async revealMany(q: Queryable, wanted: readonly Wanted[]) {
    const ids = wanted.map((w) => `${w.version ?? ''}:${w.environment}:${w.key}`);
    const first = new Map<string, number>();
    const distinct: Wanted[] = [];
    ids.forEach((id, i) => {
      if (first.has(id)) return;
      first.set(id, distinct.length);
      distinct.push(wanted[i]!);
    });
    const rows = await this.repo.revealMany(q, distinct);
    return ids.map((id) => rows[first.get(id)!]);
  }
}

/** The batcher for a caller that builds it alone (benchmarks). */
export function revealBatcher(repo: SecretsRepository): RevealBatcher {
  return new RevealBatcher(repo);
}
