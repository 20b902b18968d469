import type { Logger } from 'pino';
import type { AuditEntry } from '../audit/entry.js';
import { outcomeOf } from '../audit/outcome.js';
import type { AuditRepository } from '../audit/repository.js';
import { type AuditTrail, auditEntry } from '../audit/trail.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Transaction } from '../db/database.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import { type Actor, hasScope } from '../identity/actor.js';
import { type Caller, environmentOf } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import { inChunks } from '../in-chunks.js';
import type { BatchEntry } from './batch-schemas.js';
import { type Changes, changesMetadata } from './changes.js';
import { ifMatchSatisfied, secretEtag } from './etag.js';
import { generateValue } from './generate.js';
import { openSealed } from './open-sealed.js';
import type { Alongside, SecretRow, SecretsRepository } from './repository.js';

/**
 * The batch write behind `secrets import`: every entry created or updated in one
 * transaction (all or nothing), one audit row per key, If-Match per key, and a dry run
 * that reports created/updated/unchanged by name. Each entry's audit row is inserted in the
 * batch's transaction (so the changes and their rows commit together); a failed batch
 * records the refusal for its key and `aborted` for the others through the trail.
 */
export type BatchStatus = 'created' | 'updated' | 'unchanged';

export interface BatchServiceDeps {
  db: Database;
  repo: SecretsRepository;
  audit: AuditRepository;
  trail: AuditTrail;
  /** The one door every change goes through (src/secrets/changes.ts). */
  changes: Changes;
  keyring: Keyring;
  log: Logger;
}

/** Thrown inside the transaction so the refusal can be audited against the key that caused it. */
class EntryError extends Error {
  constructor(
    readonly key: string,
    override readonly cause: unknown,
  ) {
    super('batch entry failed');
  }
}

/** The batch import: a loop over the door's rules, in one transaction. */
export class BatchService {
  constructor(private readonly deps: BatchServiceDeps) {}

  /**
   * One entry under its row lock, through the same door as the single-key routes: planned
   * by the same rules (refusals are thrown before any dry-run answer), written with its
   * deps.audit row in one statement. Returns its status and the version it leaves current.
   */
  private async applyEntry(
    tx: Transaction,
    e: BatchEntry,
    cur: SecretRow | undefined,
    dryRun: boolean,
    who: Caller,
    actor: Actor,
    /** New secrets' deps.audit rows (and whatever else each change writes), written at the batch's end. */
    later: Alongside[],
  ): Promise<{ status: BatchStatus; version: number | null; audited?: boolean }> {
    if (e.ifMatch !== undefined && (!cur || !ifMatchSatisfied(e.ifMatch, secretEtag(cur.id, cur.revision)))) {
      throw errors.entryPreconditionFailed(e.key, cur !== undefined);
    }
    if (e.ifNoneMatch === '*' && cur?.is_active) throw errors.entryExists(e.key);
    if (!cur || !cur.is_active) {
      // Generated (and size-checked) before the transaction began: see apply. A dry run may
      // not have one (a generated value is made only when it is written).
      const request = { ...e, value: e.value ?? '' };
      const op = cur ? { kind: 'revive' as const, cur, request } : { kind: 'create' as const, request };
      const plan = this.deps.changes.planChange(who, op, { named: true });
      if (dryRun) return { status: 'created', version: null };
      const w = await this.deps.changes.writeChange(tx, who, 'secret.create', plan, { later });
      if (w.revision === undefined)
        throw errors.conflict(
          `Secret already exists: ${e.key} (created concurrently)`,
          'Run the import again',
        );
      return { status: 'created', version: w.version, audited: true };
    }
    // Planned first, so that a refused entry is refused even when it would change nothing.
    const plan = this.deps.changes.planChange(who, { kind: 'update', cur, request: e }, { named: true });
    const metaChanged = changesMetadata(cur, e);
    // generate on an existing secret keeps its value (ensure semantics). A value is compared
    // with the stored one only for callers who may read it: otherwise "unchanged" would
    // confirm a guessed value to a write-only access key. A write-only secret's value is
    // compared only for callers it may be delivered to (secrets:inject), for the same reason.
    let valueChanged = false;
    if (e.value !== undefined && e.generate === undefined) {
      if (hasScope(actor, 'secrets:read') && (!cur.write_only || who.mayInject)) {
        const stored = await this.deps.repo.findVersion(tx, cur.id, cur.current_version);
        const plain = stored
          ? openSealed(
              this.deps.keyring,
              this.deps.log,
              { secretId: cur.id, key: cur.key, version: cur.current_version },
              stored,
            )
          : undefined;
        valueChanged = plain !== e.value;
      } else valueChanged = true;
    }
    if (!metaChanged && !valueChanged) return { status: 'unchanged', version: cur.current_version };
    if (dryRun) return { status: 'updated', version: null };
    // An unchanged value is not stored again as a new version.
    const write = valueChanged
      ? plan
      : this.deps.changes.planChange(
          who,
          { kind: 'update', cur, request: { ...e, value: undefined } },
          { named: true },
        );
    const w = await this.deps.changes.writeChange(tx, who, 'secret.update', write);
    return { status: 'updated', version: w.version, audited: true };
  }

  /** `actor`: the credential behind `who`, for its scopes and patterns (named in refusals). */
  async apply(
    { entries, dryRun, actor }: { entries: BatchEntry[]; dryRun: boolean; actor: Actor },
    who: Caller,
  ): Promise<{ dryRun: boolean; results: { key: string; status: BatchStatus }[] }> {
    const outside = entries.filter((e) => !maySee(who.visible, e.key)).map((e) => e.key);
    if (outside.length && actor.kind === 'access_key') {
      await this.deps.trail.note(
        who,
        'secret.update',
        outside.map((key) => ({ key, outcome: 'denied' })),
      );
      throw errors.denied(
        `Access key "${actor.name}" may not write ${outside.join(', ')} (allowed: ${(actor.patterns ?? []).join(', ')})`,
        'Import only the keys this access key covers, or use an admin token',
      );
    }
    // CPU work before the transaction, so no connection is held while it runs: values are
    // generated and size-checked here (a generated value is used only if the key is missing
    // or deleted; an existing secret keeps its own). Yields between chunks, so other
    // requests' callbacks run during a 1000-entry import.
    const prepared: BatchEntry[] = [];
    try {
      await inChunks(entries, (e) => {
        const value = e.value ?? (dryRun ? undefined : generateValue(e.generate!));
        try {
          if (value !== undefined) this.deps.changes.checkValue(e.key, value, true);
        } catch (err) {
          throw new EntryError(e.key, err);
        }
        prepared.push(value === undefined ? e : { ...e, value });
      });
    } catch (err) {
      if (err instanceof EntryError) await this.recordFailed(who, entries, err);
      throw err instanceof EntryError ? err.cause : err;
    }
    const ordered = prepared.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const status = new Map<string, BatchStatus>();
    try {
      await this.deps.trail.transaction(who, async (tx) => {
        // A named environment's row first, as its deletion takes them (the environment, then
        // its secrets): taken only by a create (the door's insert), after the rows below, it
        // deadlocked with a deletion waiting for one of those rows.
        const environment = environmentOf(who);
        if (environment !== DEFAULT_ENVIRONMENT && !(await this.deps.repo.holdEnvironment(tx, environment)))
          throw errors.environmentNotFound(environment);
        // Every row locked in one statement (in key order, so two overlapping imports
        // cannot deadlock), the rows not written by their change in one more at the end:
        // a dry run is four round trips whatever its size, not two per entry.
        const rows = new Map(
          (
            await this.deps.repo.lockManyByKey(
              tx,
              environmentOf(who),
              ordered.map((e) => e.key),
            )
          ).map((r) => [r.key, r]),
        );
        const rowsLeft: AuditEntry[] = [];
        const later: Alongside[] = [];
        for (const e of ordered) {
          let r: { status: BatchStatus; version: number | null; audited?: boolean };
          try {
            r = await this.applyEntry(tx, e, rows.get(e.key), dryRun, who, actor, later);
          } catch (err) {
            throw new EntryError(e.key, err);
          }
          status.set(e.key, r.status);
          if (!r.audited)
            rowsLeft.push(
              auditEntry(
                who,
                r.status === 'created' ? 'secret.create' : 'secret.update',
                e.key,
                dryRun ? 'dry_run' : r.status === 'unchanged' ? 'unchanged' : 'success',
                r.version,
              ),
            );
        }
        await this.deps.repo.appendAlongside(tx, later);
        await this.deps.audit.appendMany(tx, rowsLeft);
      });
    } catch (err) {
      if (!(err instanceof EntryError)) throw err;
      await this.recordFailed(who, entries, err);
      throw err.cause;
    }
    return {
      dryRun: dryRun,
      results: entries.map((e) => ({ key: e.key, status: status.get(e.key)! })),
    };
  }

  /** Nothing was written: records the refusal for its key and the abort for the others. */
  private async recordFailed(who: Caller, entries: readonly BatchEntry[], err: EntryError) {
    const failed = outcomeOf(err.cause);
    try {
      await this.deps.trail.note(
        who,
        'secret.update',
        entries.map((e) => ({ key: e.key, outcome: e.key === err.key ? failed : 'aborted' })),
      );
    } catch {
      this.deps.log.error('audit write for a failed batch failed');
    }
  }
}

/** The service for a caller that builds it alone. */
export function createBatchService(deps: BatchServiceDeps): BatchService {
  return new BatchService(deps);
}
