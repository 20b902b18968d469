import type { Logger } from 'pino';
import { outcomeOf, withOutcome } from '../audit/outcome.js';
import type { AuditTrail, ReadOutcome } from '../audit/trail.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Queryable, Transaction } from '../db/database.js';
import type { ReadRouting, ReadTarget } from '../db/read-replicas.js';
import type { CryptoColumns } from '../db/sealed-columns.js';
import { errors } from '../errors.js';
import { type Caller, environmentOf } from '../identity/caller.js';
import { CursorCodec, type PageQuery } from '../pagination.js';
import type { ChangeRequest, Changes, CreateRequest } from './changes.js';
import { ifMatchSatisfied, secretEtag } from './etag.js';
import { openSealed } from './open-sealed.js';
import { type RevealRow, type SecretRow, type SecretsRepository, toMetadata } from './repository.js';
import { RevealBatcher } from './reveal-batch.js';

/** Rules, transactions and crypto for secrets. Knows nothing of HTTP beyond the typed errors. */

export type { SecretMetadata } from './repository.js';

export interface VersionsView {
  etag: string;
  body: {
    key: string;
    currentVersion: number;
    versions: {
      version: number;
      createdAt: string;
      createdBy: string | null;
      kid: string;
      current: boolean;
    }[];
  };
}

export interface Revealed {
  key: string;
  value: string;
  etag: string;
}

export type { ChangeRequest as UpdateInput, CreateRequest as CreateInput } from './changes.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

// The list cursor is opaque to clients: base64url of a versioned keyset position.
const cursors = new CursorCodec({ tag: 'v1', positionOf: (r: { seq: string }) => r.seq });

const versionNotFound = (key: string, version: number) =>
  errors.notFound(
    `Secret not found: ${key} has no version ${version}`,
    `List the versions that are kept with GET /api/secrets/${key}/versions`,
  );

const notFound = (key: string) =>
  errors.notFound(
    `Secret not found: ${key}`,
    'Check the key name with GET /api/secrets, or create it with POST /api/secrets',
  );

/** A failed read: its error and the one row it leaves. */
const readFailed = <T>(error: unknown, key: string, version: number | null = null): ReadOutcome<T> => ({
  ok: false,
  error,
  touched: [{ key, version, outcome: outcomeOf(error) }],
});

/**
 * The refusal of a write-only secret's reveal, for every caller (admins too): its value
 * reaches workloads only through export, render and `secrets run` with secrets:inject.
 */
export const writeOnlyRefused = (key: string) =>
  withOutcome(
    errors.forbidden(
      `Secret ${key} is write-only: its value is never returned, to anyone`,
      'Workloads receive it through GET /api/secrets/export, POST /api/secrets/render or `secrets run` with an access key holding the secrets:inject scope (and secrets:read). To know the value, set a new one with PUT /api/secrets/{key} {"value": ...}',
    ),
    'denied',
  );

/** Why a found secret cannot be read: write-only, inactive, expired or missing version (null: readable). */
function unreadable(key: string, row: RevealRow) {
  // First: whatever its state, the answer to "can I read it" is never.
  if (row.write_only) return writeOnlyRefused(key);
  if (!row.is_active) {
    return withOutcome(
      errors.notFound(
        `Secret not found: ${key} is inactive`,
        'Reactivate it with PUT /api/secrets/{key} {"isActive": true}, or re-create it with POST /api/secrets',
      ),
      'inactive',
    );
  }
  if (row.expired) {
    return withOutcome(
      errors.notFound(
        `Secret not found: ${key} expired at ${iso(row.expires_at)}`,
        'Set a new expiry (or null) with PUT /api/secrets/{key} {"expiresAt": ...}',
      ),
      'expired',
    );
  }
  if (!row.has_version) return versionNotFound(key, row.version);
  return null;
}

export interface SecretServiceDeps {
  db: Database;
  repo: SecretsRepository;
  trail: AuditTrail;
  /** The one door every change goes through (src/secrets/changes.ts). */
  changes: Changes;
  keyring: Keyring;
  log: Logger;
  /** Read replicas (DATABASE_READ_URL): where value reads and lists go. Default: the primary. */
  reads?: Pick<ReadRouting, 'route' | 'served' | 'failed' | 'overruled'> | undefined;
}

/** Rules, transactions and crypto for secrets: each method one audited read or change. */
export class SecretService {
  private readonly primary: ReadTarget;
  private readonly reveals: RevealBatcher;

  constructor(private readonly deps: SecretServiceDeps) {
    this.primary = { db: deps.db, replica: undefined };
    this.reveals = new RevealBatcher(deps.repo);
  }

  /** Metadata of the secrets the caller may see; one audit row (its prefix as key). */
  async list(
    opts: PageQuery & { prefix?: string | undefined; active?: boolean | undefined },
    caller: Caller,
  ) {
    const { page, nextCursor } = await cursors.page(opts, (limit, beforeSeq) =>
      this.deps.trail.lookup(caller, 'secret.list', opts.prefix ?? null, () =>
        this.onRoute(caller, (q) =>
          this.deps.repo.listPage(q, {
            environment: environmentOf(caller),
            limit,
            beforeSeq,
            prefix: opts.prefix,
            active: opts.active,
            visible: caller.visible,
          }),
        ),
      ),
    );
    return { secrets: page.map(toMetadata), nextCursor };
  }

  async create(input: CreateRequest, caller: Caller): Promise<{ id: string; revived: boolean }> {
    return this.deps.trail.change<{ id: string; revived: boolean }>(
      caller,
      'secret.create',
      input.key,
      async (tx) => {
        const made = await this.deps.changes.planAndWrite(tx, caller, 'secret.create', {
          kind: 'create',
          request: input,
        });
        if (made.revision !== undefined)
          return { result: { id: made.id, revived: false }, version: 1, audited: true };

        // The key exists. Active: conflict. Soft-deleted: revive it under its own id, as a new version.
        const cur = await this.deps.repo.findByKey(tx, environmentOf(caller), input.key, { forUpdate: true });
        if (!cur) throw errors.conflict(`Secret already exists: ${input.key}`, 'Retry the request');
        if (cur.is_active) {
          throw errors.conflict(
            `Secret already exists: ${input.key}`,
            'Use PUT /api/secrets/{key} to change its value, or choose another key',
          );
        }
        const revived = await this.deps.changes.planAndWrite(tx, caller, 'secret.create', {
          kind: 'revive',
          cur,
          request: input,
        });
        return { result: { id: cur.id, revived: true }, version: revived.version, audited: true };
      },
    );
  }

  /**
   * The current value, or version `version`; the same 404 rules apply to every version.
   * The read is one plain SELECT (no lock, no write); the value is opened, then the
   * read's audit row (with its outcome, and the lastUsed stamp) is group-committed and
   * awaited before anything is returned.
   */
  async reveal(
    { key, version }: { key: string; version?: number | undefined },
    caller: Caller,
  ): Promise<Revealed> {
    return this.deps.trail.read(
      caller,
      'secret.read',
      key,
      () => this.onRoute(caller, (q, replica) => this.revealOn(q, replica, caller, key, version)),
      () => {
        this.deps.reads?.overruled();
        return this.revealOn(this.deps.db, false, caller, key, version);
      },
    );
  }

  /** Version metadata, newest first; works for inactive secrets too (it reveals no value). */
  async versions({ key }: { key: string }, caller: Caller) {
    return this.deps.trail.read(
      caller,
      'secret.versions',
      key,
      async (): Promise<ReadOutcome<VersionsView>> => {
        const cur = await this.deps.repo.findByKey(this.deps.db, environmentOf(caller), key);
        if (!cur) return readFailed(notFound(key), key);
        const rows = await this.deps.repo.listVersions(this.deps.db, cur.id);
        return {
          ok: true,
          touched: [{ key, version: cur.current_version, outcome: 'success' }],
          result: {
            etag: secretEtag(cur.id, cur.revision),
            body: {
              key: cur.key,
              currentVersion: cur.current_version,
              versions: rows.map((v) => ({
                version: v.version,
                createdAt: v.created_at.toISOString(),
                createdBy: v.created_by,
                kid: v.kid,
                current: v.version === cur.current_version,
              })),
            },
          },
        };
      },
    );
  }

  /**
   * Stores the value of an older version as a new version. The old value is opened and
   * sealed again under the new number (its AAD names the version), never copied.
   */
  async rollback(
    { key, version, ifMatch }: { key: string; version: number; ifMatch?: string | undefined },
    caller: Caller,
  ) {
    return this.deps.trail.change(caller, 'secret.rollback', key, async (tx) => {
      // One locking read brings the secret and the old version's sealed value.
      const cur = checked(
        await this.deps.repo.lockWithVersion(tx, environmentOf(caller), key, version),
        key,
        ifMatch,
      );
      if (!cur.old) throw versionNotFound(key, version);
      const value = this.open(cur, version, cur.old);
      const w = await this.deps.changes.planAndWrite(tx, caller, 'secret.rollback', {
        kind: 'rollback',
        cur,
        value,
      });
      return {
        result: { version: w.version, etag: secretEtag(cur.id, w.revision!) },
        version: w.version,
        audited: true,
      };
    });
  }

  /** Reactivates a soft-deleted secret with its history; restoring an active one changes nothing. */
  async restore(
    { key, ifMatch }: { key: string; ifMatch?: string | undefined },
    caller: Caller,
  ): Promise<{ etag: string }> {
    return this.deps.trail.change(caller, 'secret.restore', key, async (tx) => {
      const cur = await this.lockChecked(tx, caller, key, ifMatch);
      const version = cur.current_version;
      if (cur.is_active) return { result: { etag: secretEtag(cur.id, cur.revision) }, version };
      const w = await this.deps.changes.planAndWrite(tx, caller, 'secret.restore', { kind: 'restore', cur });
      return { result: { etag: secretEtag(cur.id, w.revision!) }, version, audited: true };
    });
  }

  async update(
    { key, ifMatch, changes: input }: { key: string; ifMatch?: string | undefined; changes: ChangeRequest },
    caller: Caller,
  ): Promise<{ etag: string }> {
    return this.deps.trail.changeGuarded(
      caller,
      'secret.update',
      key,
      // Usually: a plain read, then one statement guarded by the revision it saw.
      async (q) => {
        const cur = checked(await this.deps.repo.findByKey(q, environmentOf(caller), key), key, ifMatch);
        const w = await this.deps.changes.planAndWrite(
          q,
          caller,
          'secret.update',
          { kind: 'update', cur, request: input },
          { guarded: true },
        );
        return w.revision === undefined ? undefined : { etag: secretEtag(cur.id, w.revision) };
      },
      // Lost races, or read replicas to fence: under the row lock, in a transaction.
      async (tx) => {
        const cur = await this.lockChecked(tx, caller, key, ifMatch);
        const w = await this.deps.changes.planAndWrite(tx, caller, 'secret.update', {
          kind: 'update',
          cur,
          request: input,
        });
        return { result: { etag: secretEtag(cur.id, w.revision!) }, version: w.version, audited: true };
      },
    );
  }

  /**
   * Soft delete (isActive=false), or with `purge` the irreversible erasure of an inactive,
   * non-reserved secret and all its versions. Returns the new ETag (none after a purge).
   */
  async remove(
    { key, ...opts }: { key: string; ifMatch?: string | undefined; purge?: boolean | undefined },
    caller: Caller,
  ): Promise<{ etag: string | undefined }> {
    const action = opts.purge ? 'secret.purge' : 'secret.delete';
    return this.deps.trail.change<{ etag: string | undefined }>(caller, action, key, async (tx) => {
      const cur = await this.lockChecked(tx, caller, key, opts.ifMatch);
      const version = cur.current_version;
      if (opts.purge) {
        await this.deps.changes.planAndWrite(tx, caller, action, { kind: 'purge', cur });
        return { result: { etag: undefined }, version, audited: true };
      }
      // Already deleted: idempotent (a reserved one is refused all the same).
      const plan = this.deps.changes.planChange(caller, { kind: 'delete', cur });
      if (!cur.is_active) return { result: { etag: secretEtag(cur.id, cur.revision) }, version };
      const w = await this.deps.changes.writeChange(tx, caller, action, plan);
      return { result: { etag: secretEtag(cur.id, w.revision!) }, version, audited: true };
    });
  }

  /**
   * One value read on q. From a replica the outcome carries what it saw, which the primary
   * confirms when the audit row commits (src/audit/writer.ts): a secret deleted,
   * expired or changed since is answered again by the primary, never served stale.
   * A value a replica cannot open (a key ring moved on) is read from the primary too.
   */
  private async revealOn(
    q: Queryable,
    replica: boolean,
    caller: Caller,
    key: string,
    version: number | undefined,
  ): Promise<ReadOutcome<Revealed>> {
    const row = await this.reveals.revealRow(q, environmentOf(caller), key, version);
    const check = replica
      ? {
          key,
          environment: environmentOf(caller),
          revision: row?.revision ?? null,
          readable: row !== undefined && !unreadable(key, row),
        }
      : undefined;
    if (!row) return { ...readFailed(notFound(key), key), check };
    const refused = unreadable(key, row);
    if (refused) return { ...readFailed(refused, key, row.version), check };
    let value: string;
    try {
      value = this.open(row, row.version, row);
    } catch (err) {
      if (replica) throw err;
      return readFailed(err, key, row.version);
    }
    return {
      ok: true,
      result: { key: row.key, value, etag: secretEtag(row.id, row.revision) },
      touched: [{ key, version: row.version, outcome: 'success' }],
      // Only a read that finds the stamp due sends one; the batch is then a plain insert
      // unless some read in it is due (src/audit/writer.ts).
      lastUse: row.stamp_due ? { secretId: row.id, by: caller.label } : undefined,
      check,
    };
  }

  /**
   * Runs a read on the replica chosen for the caller, or the primary. A replica that fails
   * (down, or any error: a recovery conflict, a migration not yet replayed) is marked down
   * and the primary answers: a dead replica never fails a read.
   */
  private async onRoute<R>(caller: Caller, run: (q: Queryable, replica: boolean) => Promise<R>): Promise<R> {
    const reads = this.deps.reads;
    const target = reads ? await reads.route(caller.actor) : this.primary;
    if (target.replica !== undefined) {
      try {
        const r = await run(target.db, true);
        reads?.served(target);
        return r;
      } catch (err) {
        reads?.failed(target, err);
      }
    }
    reads?.served(this.primary);
    return run(this.deps.db, false);
  }

  private open(row: { id: string; key: string }, version: number, sealed: CryptoColumns) {
    return openSealed(this.deps.keyring, this.deps.log, { secretId: row.id, key: row.key, version }, sealed);
  }

  /** The secret's row under its lock, checked against If-Match. */
  private async lockChecked(tx: Transaction, caller: Caller, key: string, ifMatch: string | undefined) {
    return checked(
      await this.deps.repo.findByKey(tx, environmentOf(caller), key, { forUpdate: true }),
      key,
      ifMatch,
    );
  }
}

/** A row (locked, or read for a guarded write) checked against If-Match: 404 when absent, 412 when stale. */
function checked<R extends SecretRow>(cur: R | undefined, key: string, ifMatch: string | undefined): R {
  if (!cur) throw notFound(key);
  const etag = secretEtag(cur.id, cur.revision);
  if (!ifMatchSatisfied(ifMatch, etag)) throw errors.preconditionFailed(etag);
  return cur;
}

/** The service for a caller that builds it alone. */
export function createSecretService(deps: SecretServiceDeps): SecretService {
  return new SecretService(deps);
}
