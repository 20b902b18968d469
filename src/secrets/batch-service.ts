import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AuditEntry } from '../audit/entry.js';
import { outcomeOf } from '../audit/outcome.js';
import type { AuditRepository } from '../audit/repository.js';
import { type AuditTrail, auditEntry } from '../audit/trail.js';
import { type Actor, hasScope } from '../auth/actor.js';
import type { Caller } from '../auth/caller.js';
import { maySee } from '../auth/visibility.js';
import { sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Transaction } from '../db/database.js';
import { AppError, errors } from '../errors.js';
import type { BatchEntry } from './batch-schemas.js';
import { ifMatchSatisfied, secretEtag } from './etag.js';
import { generateValue } from './generate.js';
import { openSealed } from './open-sealed.js';
import type { SecretRow, SecretsRepository } from './repository.js';
import { revivedReserved, writeOnlyPermanent } from './service.js';

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
  keyring: Keyring;
  log: Logger;
  maxValueBytes: number;
  maxVersions: number;
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

/** Entries prepared between two yields to the event loop. */
const YIELD_EVERY = 100;

const sameDate = (a: Date | null, b: Date | null) => (a?.getTime() ?? null) === (b?.getTime() ?? null);

export function createBatchService(deps: BatchServiceDeps) {
  const { repo, audit, trail, keyring, log, maxValueBytes, maxVersions } = deps;

  function checkValue(key: string, value: string) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxValueBytes)
      throw errors.payloadTooLarge(
        `${key}: value is ${bytes} bytes of UTF-8; the limit is ${maxValueBytes} bytes`,
      );
  }

  function version(cur: { id: string; key: string }, number: number, value: string, by: string) {
    return {
      number,
      createdBy: by,
      keep: maxVersions,
      sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version: number }, value),
    };
  }

  /** Applies one entry under the row lock; returns its status and the version it leaves current. */
  async function applyEntry(
    tx: Transaction,
    e: BatchEntry,
    cur: SecretRow | undefined,
    dryRun: boolean,
    who: Caller,
    actor: Actor,
  ): Promise<{ status: BatchStatus; version: number | null; audited?: boolean }> {
    if (e.ifMatch !== undefined && (!cur || !ifMatchSatisfied(e.ifMatch, secretEtag(cur.id, cur.revision)))) {
      throw new AppError(
        412,
        'PRECONDITION_FAILED',
        `Precondition failed: ${e.key} ${cur ? 'changed since the ETag given in ifMatch' : 'does not exist'}`,
        'Read the secret again, then retry the import with its current ETag (or without ifMatch)',
      );
    }
    if (!cur || !cur.is_active) return create(tx, cur, e, dryRun, who, actor);
    return update(tx, cur, e, dryRun, who, actor);
  }

  async function create(
    tx: Transaction,
    cur: SecretRow | undefined,
    e: BatchEntry,
    dryRun: boolean,
    who: Caller,
    actor: Actor,
  ) {
    if (cur) {
      // A revived write-only secret stays write-only: its kept versions must stay unreadable.
      writeOnlyPermanent(e.key, cur.write_only, e.isWriteOnly);
      revivedReserved(cur, e.key, e.isReserved, actor.kind === 'admin');
    }
    if (dryRun) return { status: 'created' as const, version: null };
    // Generated (and size-checked) before the transaction began: see apply.
    const value = e.value!;
    const meta = {
      isReserved: e.isReserved ?? false,
      writeOnly: e.isWriteOnly ?? false,
      expiresAt: e.expiresAt ?? null,
      description: e.description ?? null,
    };
    if (!cur) {
      const id = randomUUID();
      const sealed = sealValue(keyring, { secretId: id, key: e.key, version: 1 }, value);
      if (
        !(await repo.insertNew(
          tx,
          { id, key: e.key, ...meta, createdBy: who.label },
          sealed,
          auditEntry(who, 'secret.create', e.key, 'success', 1),
        ))
      )
        throw errors.conflict(
          `Secret already exists: ${e.key} (created concurrently)`,
          'Run the import again',
        );
      return { status: 'created' as const, version: 1, audited: true };
    }
    // Soft-deleted: revived under its own id as a new version, as POST /api/secrets does.
    const next = version(cur, cur.current_version + 1, value, who.label);
    await repo.updateLocked(
      tx,
      cur,
      {
        isActive: true,
        isReserved: revivedReserved(cur, e.key, e.isReserved, actor.kind === 'admin'),
        expiresAt: meta.expiresAt,
        description: meta.description,
        ...(meta.writeOnly && !cur.write_only ? { writeOnly: true as const } : {}),
        version: next,
      },
      auditEntry(who, 'secret.create', e.key, 'success', next.number),
    );
    return { status: 'created' as const, version: next.number, audited: true };
  }

  async function update(
    tx: Transaction,
    cur: SecretRow,
    e: BatchEntry,
    dryRun: boolean,
    who: Caller,
    actor: Actor,
  ) {
    if (e.isReserved === false && cur.is_reserved && actor.kind === 'access_key')
      throw errors.denied(
        `Only an admin can un-reserve ${e.key}`,
        'Leave isReserved out, or use an admin token',
      );
    writeOnlyPermanent(e.key, cur.write_only, e.isWriteOnly);
    const makeWriteOnly = e.isWriteOnly === true && !cur.write_only;
    if (makeWriteOnly && !who.admin)
      throw errors.denied(
        `Only an admin can make the existing secret ${e.key} write-only`,
        'Leave isWriteOnly out, or use an admin token',
      );
    const metaChanged =
      makeWriteOnly ||
      (e.description !== undefined && e.description !== cur.description) ||
      (e.expiresAt !== undefined && !sameDate(e.expiresAt, cur.expires_at)) ||
      (e.isReserved !== undefined && e.isReserved !== cur.is_reserved);
    // generate on an existing secret keeps its value (ensure semantics). A value is compared
    // with the stored one only for callers who may read it: otherwise "unchanged" would
    // confirm a guessed value to a write-only access key. A write-only secret's value is
    // compared only for callers it may be delivered to (secrets:inject), for the same reason.
    let valueChanged = false;
    if (e.value !== undefined && e.generate === undefined) {
      if (hasScope(actor, 'secrets:read') && (!cur.write_only || who.mayInject)) {
        const stored = await repo.findVersion(tx, cur.id, cur.current_version);
        const plain = stored
          ? openSealed(keyring, log, { secretId: cur.id, key: cur.key, version: cur.current_version }, stored)
          : undefined;
        valueChanged = plain !== e.value;
      } else valueChanged = true;
    }
    if (!metaChanged && !valueChanged) return { status: 'unchanged' as const, version: cur.current_version };
    if (dryRun) return { status: 'updated' as const, version: null };
    const next = valueChanged ? version(cur, cur.current_version + 1, e.value!, who.label) : undefined;
    const v = next?.number ?? cur.current_version;
    await repo.updateLocked(
      tx,
      cur,
      {
        isReserved: e.isReserved,
        ...(makeWriteOnly ? { writeOnly: true as const } : {}),
        expiresAt: e.expiresAt,
        description: e.description,
        version: next,
      },
      auditEntry(who, 'secret.update', e.key, 'success', v),
    );
    return { status: 'updated' as const, version: v, audited: true };
  }

  return {
    async apply(
      entries: BatchEntry[],
      opts: { dryRun: boolean },
      who: Caller,
      actor: Actor,
    ): Promise<{ dryRun: boolean; results: { key: string; status: BatchStatus }[] }> {
      /** Nothing was written: records the refusal for its key and the abort for the others. */
      const recordFailed = async (err: EntryError) => {
        const failed = outcomeOf(err.cause);
        try {
          await trail.note(
            who,
            'secret.update',
            entries.map((e) => ({ key: e.key, outcome: e.key === err.key ? failed : 'aborted' })),
          );
        } catch {
          log.error('audit write for a failed batch failed');
        }
      };
      const outside = entries.filter((e) => !maySee(who.visible, e.key)).map((e) => e.key);
      if (outside.length && actor.kind === 'access_key') {
        await trail.note(
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
        for (const [i, e] of entries.entries()) {
          if (i > 0 && i % YIELD_EVERY === 0) await setImmediate();
          const value = e.value ?? (opts.dryRun ? undefined : generateValue(e.generate!));
          try {
            if (value !== undefined) checkValue(e.key, value);
          } catch (err) {
            throw new EntryError(e.key, err);
          }
          prepared.push(value === undefined ? e : { ...e, value });
        }
      } catch (err) {
        if (err instanceof EntryError) await recordFailed(err);
        throw err instanceof EntryError ? err.cause : err;
      }
      const ordered = prepared.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const status = new Map<string, BatchStatus>();
      try {
        await trail.transaction(who, async (tx) => {
          // Every row locked in one statement (in key order, so two overlapping imports
          // cannot deadlock), the rows not written by their change in one more at the end:
          // a dry run is four round trips whatever its size, not two per entry.
          const rows = new Map(
            (
              await repo.lockManyByKey(
                tx,
                ordered.map((e) => e.key),
              )
            ).map((r) => [r.key, r]),
          );
          const rowsLeft: AuditEntry[] = [];
          for (const e of ordered) {
            let r: { status: BatchStatus; version: number | null; audited?: boolean };
            try {
              r = await applyEntry(tx, e, rows.get(e.key), opts.dryRun, who, actor);
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
                  opts.dryRun ? 'dry_run' : r.status === 'unchanged' ? 'unchanged' : 'success',
                  r.version,
                ),
              );
          }
          await audit.appendMany(tx, rowsLeft);
        });
      } catch (err) {
        if (!(err instanceof EntryError)) throw err;
        await recordFailed(err);
        throw err.cause;
      }
      return {
        dryRun: opts.dryRun,
        results: entries.map((e) => ({ key: e.key, status: status.get(e.key)! })),
      };
    },
  };
}

export type BatchService = ReturnType<typeof createBatchService>;
