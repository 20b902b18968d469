import { randomUUID } from 'node:crypto';
import type { AuditAction } from '../audit/entry.js';
import type { AuditOutcome } from '../audit/outcome.js';
import { auditEntry } from '../audit/trail.js';
import { sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Queryable } from '../db/database.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import { changeEvent, type PatchShape } from '../events/outbox.js';
import { type Caller, environmentOf } from '../identity/caller.js';
import type { Alongside, SecretPatch, SecretRow, SecretsRepository } from './repository.js';

/**
 * The one door for changes to secrets. Every write to `secrets` / `secret_versions` (create,
 * revive, update, rollback, restore, delete, purge, a batch import's entries, a key
 * rotation's batches) is planned by `planChange`, which applies the write rules, and written
 * (those too, and a deleted environment's soft-deleted secrets: `eraseInactive`)
 * by `writeChange`, which seals the new version and writes it together with what every
 * changed secret leaves behind (`alongside`: today its audit success row) in one statement,
 * or (a new secret, a rotation batch) in the change's transaction right after it. A batch import is a loop over the same two
 * functions; the single-key service and the batch differ only in how they answer.
 *
 * Per changed secret, in the same statement/transaction: `alongside` below is THE place to
 * add one more thing (a change-events outbox row is one more line there, one more field in
 * `Alongside` and its SQL beside the audit row's in `alongsideCtes` and `appendAlongside`,
 * all in src/secrets/repository.ts).
 */

/** What a caller asks to change on an existing secret (PUT, or a batch entry for one). */
export interface ChangeRequest {
  value?: string | undefined;
  isActive?: boolean | undefined;
  isReserved?: boolean | undefined;
  isWriteOnly?: boolean | undefined;
  expiresAt?: Date | null | undefined;
  description?: string | null | undefined;
}

/** What a caller asks for a new secret (POST, or a batch entry for a missing or deleted key). */
export interface CreateRequest {
  key: string;
  value: string;
  isReserved?: boolean | undefined;
  isWriteOnly?: boolean | undefined;
  expiresAt?: Date | null | undefined;
  description?: string | null | undefined;
}

/** A change to plan: the operation and the row it applies to (as read, locked or not). */
export type ChangeOp =
  | { kind: 'create'; request: CreateRequest }
  /** A soft-deleted secret created again: it comes back under its own id, as a new version. */
  | { kind: 'revive'; cur: SecretRow; request: CreateRequest }
  | { kind: 'update'; cur: SecretRow; request: ChangeRequest }
  /** An older version's value stored again as a new version (already opened: no size rule). */
  | { kind: 'rollback'; cur: SecretRow; value: string }
  | { kind: 'restore'; cur: SecretRow }
  | { kind: 'delete'; cur: SecretRow }
  | { kind: 'purge'; cur: SecretRow };

/**
 * A planned change: only planChange makes one, so every write has passed the rules (save a
 * deleted environment's purges, built by eraseInactive, which says why).
 */
export type ChangePlan =
  | { kind: 'insert'; key: string; meta: NewSecret; value: string }
  | { kind: 'patch'; key: string; cur: SecretRow; patch: PlannedPatch }
  | { kind: 'purge'; key: string; cur: SecretRow };

interface NewSecret {
  description: string | null;
  isReserved: boolean;
  writeOnly: boolean;
  expiresAt: Date | null;
}

/** A patch before sealing: `value` becomes the next version when written. */
type PlannedPatch = Omit<SecretPatch, 'version'> & { value?: string | undefined };

/** One changed secret: what `alongside` is built from. */
export interface Changed {
  caller: Caller;
  action: AuditAction;
  key: string;
  secretId: string;
  /** The version the change leaves current (the rotated version, for a rotation). */
  version: number | null;
  /** What a patch changed (its event type depends on it: a PUT that only reserves is secret.reserved). */
  patch?: PatchShape | undefined;
}

/**
 * THE per-change hook: everything written beside each changed secret, in the change's own
 * statement (or transaction), so the change and these rows commit together or not at all.
 * Add one more thing per changed secret here (its field and SQL: Alongside, alongsideCtes and
 * appendAlongside in src/secrets/repository.ts).
 */
export function alongside(c: Changed, outcome: AuditOutcome = 'success'): Alongside {
  return {
    audit: auditEntry(c.caller, c.action, c.key, outcome, c.version),
    // The change's event (the outbox, src/events/outbox.ts): exactly when the change commits.
    event:
      outcome === 'success'
        ? changeEvent({ ...c, actor: c.caller.actor, environment: environmentOf(c.caller) })
        : undefined,
  };
}

/** The result of writeChange: the secret's id and new revision (undefined when a guard lost). */
export interface Written {
  id: string;
  /** Undefined when nothing was written: a guarded write lost its race, or an insert found the key. */
  revision: string | undefined;
  version: number;
}

/**
 * The un-reserve rule, the one meaning for every path (PUT, POST reviving, batch import):
 * taking the reserved flag off a secret that has it is admin-only, since un-reserving is
 * what makes it deletable; no access-key scope implies it. isReserved:false on a secret that
 * is not reserved changes nothing and is allowed, as isWriteOnly:true on a write-only one.
 * The message says the path's situation: a revive, a batch entry (named by key) or a PUT.
 */
export function unreserveRule(
  caller: Caller,
  key: string,
  reserved: boolean,
  requested: boolean | undefined,
  how: 'update' | 'entry' | 'revive',
) {
  if (!reserved || requested !== false || caller.admin) return;
  if (how === 'revive')
    throw errors.denied(
      `Only an admin can un-reserve ${key}: it was reserved when deleted, and reviving keeps it reserved`,
      'Leave isReserved out, or use an admin token',
    );
  if (how === 'entry')
    throw errors.denied(`Only an admin can un-reserve ${key}`, 'Leave isReserved out, or use an admin token');
  const who = caller.label.startsWith('access_key:')
    ? `access key "${caller.label.slice('access_key:'.length)}"`
    : caller.label;
  throw errors.denied(
    `Admin access required: ${who} cannot set isReserved to false (un-reserving is admin-only)`,
    'Use an admin token for this operation',
  );
}

/**
 * Refuses to clear the write-only flag (whoever asks): the kept versions would become
 * readable. A person who needs to see the value sets a new one.
 */
export function writeOnlyPermanent(key: string, current: boolean, wanted: boolean | undefined) {
  if (current && wanted === false) {
    throw errors.forbidden(
      `Secret ${key} is write-only, and write-only cannot be undone`,
      'Leave isWriteOnly out (or true). To know the value, set a new one with PUT /api/secrets/{key} {"value": ...}; to start over, delete and purge the secret (admin) and create it again',
    );
  }
}

/**
 * Secrets a deleted environment's erasure purges per batch: two statements (and one scan of
 * the change events for their ETags) per batch, its parameters a few arrays of this many
 * elements.
 */
export const ERASE_BATCH = 500;

/** A new secret's revision (the column's default, migrations/002). */
const FIRST_REVISION = '1';

const sameDate = (a: Date | null, b: Date | null) => (a?.getTime() ?? null) === (b?.getTime() ?? null);

/**
 * Whether an update's metadata differs from the row (its value aside): a batch entry that
 * changes nothing is `unchanged` and writes nothing. Every metadata field a request can
 * set is compared here.
 */
export function changesMetadata(cur: SecretRow, request: ChangeRequest): boolean {
  return (
    (request.isWriteOnly === true && !cur.write_only) ||
    (request.isActive !== undefined && request.isActive !== cur.is_active) ||
    (request.description !== undefined && request.description !== cur.description) ||
    (request.expiresAt !== undefined && !sameDate(request.expiresAt, cur.expires_at)) ||
    (request.isReserved !== undefined && request.isReserved !== cur.is_reserved)
  );
}

export interface ChangesDeps {
  repo: SecretsRepository;
  keyring: Keyring;
  maxValueBytes: number;
  /** Versions kept per secret (MAX_VERSIONS); older ones are pruned when one is added. */
  maxVersions: number;
}

/** The door: planChange (the rules), writeChange (the write), and the two made of them. */
export class Changes {
  constructor(private readonly deps: ChangesDeps) {}

  /**
   * The value size rule alone (a batch checks its values before its transaction begins).
   * `named`: the message names the key (a batch entry), else it is the request's own value.
   */
  checkValue(key: string, value: string, named: boolean) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > this.deps.maxValueBytes) {
      throw errors.payloadTooLarge(
        `${named ? `${key}: ` : ''}value is ${bytes} bytes of UTF-8; the limit is ${this.deps.maxValueBytes} bytes`,
      );
    }
  }

  /** The patch for an existing secret's update (PUT or a batch entry), under the rules. */
  private updatePatch(cur: SecretRow, caller: Caller, request: ChangeRequest, named: boolean): PlannedPatch {
    const key = cur.key;
    unreserveRule(caller, key, cur.is_reserved, request.isReserved, named ? 'entry' : 'update');
    if (request.value !== undefined) this.checkValue(key, request.value, named);
    writeOnlyPermanent(key, cur.write_only, request.isWriteOnly);
    const makeWriteOnly = request.isWriteOnly === true && !cur.write_only;
    // Switching locks every person out of the value: no access-key scope implies it.
    if (makeWriteOnly && !caller.admin) {
      throw named
        ? errors.denied(
            `Only an admin can make the existing secret ${key} write-only`,
            'Leave isWriteOnly out, or use an admin token',
          )
        : errors.denied(
            `Admin access required: only an admin can make the existing secret ${key} write-only`,
            'Use an admin token, or create the secret write-only (POST /api/secrets {"isWriteOnly": true})',
          );
    }
    if (request.isActive === false && cur.is_reserved) {
      throw errors.forbidden(
        `Cannot deactivate reserved secret: ${key}`,
        'Set isReserved to false first, then deactivate or delete it',
      );
    }
    return {
      isActive: request.isActive,
      isReserved: request.isReserved,
      ...(makeWriteOnly ? { writeOnly: true as const } : {}),
      expiresAt: request.expiresAt,
      description: request.description,
      value: request.value,
    };
  }

  /** The patch that revives a soft-deleted secret (POST or a batch entry), under the rules. */
  private revivePatch(cur: SecretRow, caller: Caller, request: CreateRequest, named: boolean): PlannedPatch {
    this.checkValue(request.key, request.value, named);
    // Reviving keeps it write-only: its kept versions must stay unreadable.
    writeOnlyPermanent(request.key, cur.write_only, request.isWriteOnly);
    // It comes back reserved as it was, unless the request (an admin's) says otherwise.
    unreserveRule(caller, request.key, cur.is_reserved, request.isReserved, 'revive');
    return {
      isActive: true,
      isReserved: request.isReserved ?? cur.is_reserved,
      ...(request.isWriteOnly && !cur.write_only ? { writeOnly: true as const } : {}),
      expiresAt: request.expiresAt ?? null,
      description: request.description ?? null,
      value: request.value,
    };
  }

  /**
   * The write rules, for every change: refuses (throws the typed error) or returns the plan
   * writeChange writes. Pure: no I/O, no sealing (a batch plans its dry run with it too).
   * `named`: size errors name the key (a batch, where the request holds many values).
   */
  planChange(caller: Caller, op: ChangeOp, opts: { named?: boolean } = {}): ChangePlan {
    const named = opts.named ?? false;
    switch (op.kind) {
      case 'create': {
        const r = op.request;
        this.checkValue(r.key, r.value, named);
        return {
          kind: 'insert',
          key: r.key,
          value: r.value,
          meta: {
            description: r.description ?? null,
            isReserved: r.isReserved ?? false,
            writeOnly: r.isWriteOnly ?? false,
            expiresAt: r.expiresAt ?? null,
          },
        };
      }
      case 'revive':
        return {
          kind: 'patch',
          key: op.cur.key,
          cur: op.cur,
          patch: this.revivePatch(op.cur, caller, op.request, named),
        };
      case 'update':
        return {
          kind: 'patch',
          key: op.cur.key,
          cur: op.cur,
          patch: this.updatePatch(op.cur, caller, op.request, named),
        };
      case 'rollback':
        return { kind: 'patch', key: op.cur.key, cur: op.cur, patch: { value: op.value } };
      case 'restore':
        return { kind: 'patch', key: op.cur.key, cur: op.cur, patch: { isActive: true } };
      case 'delete':
      case 'purge': {
        const { cur } = op;
        if (cur.is_reserved) {
          throw errors.forbidden(
            `Cannot delete reserved secret: ${cur.key}`,
            'Set isReserved to false with PUT first',
          );
        }
        if (op.kind === 'delete') return { kind: 'patch', key: cur.key, cur, patch: { isActive: false } };
        if (cur.is_active) {
          throw errors.conflict(
            `Cannot purge active secret: ${cur.key}`,
            'Delete it first (DELETE /api/secrets/{key}), then purge it',
          );
        }
        return { kind: 'purge', key: cur.key, cur };
      }
    }
  }

  /**
   * THE DOOR: writes a planned change of one secret, its new version sealed for its number,
   * and `alongside` (its audit success row, ...) so that they commit together: in the same
   * single statement on `q`, a transaction or (a guarded update) the pool in autocommit; a
   * new secret's in a second statement on `q`, which is then the change's transaction.
   * For a patch the statement is guarded by the revision `cur` was read at: when a
   * concurrent change won, nothing at all is written and `revision` is undefined (only
   * with `guarded`: a row read under its lock cannot lose, so losing there is a bug). An
   * insert that finds the key taken writes nothing either (revision undefined).
   */
  async writeChange(
    q: Queryable,
    caller: Caller,
    action: AuditAction,
    plan: ChangePlan,
    opts: {
      guarded?: boolean | undefined;
      /** A batch's: new secrets' rows are collected here, for one appendAlongside on q at its end. */
      later?: Alongside[] | undefined;
    } = {},
  ): Promise<Written> {
    if (plan.kind === 'insert') {
      // The environment enters here: a new secret is created in the caller's environment,
      // whose row is held until the change commits (a named one may be deleted meanwhile).
      const environment = environmentOf(caller);
      if (environment !== DEFAULT_ENVIRONMENT && !(await this.deps.repo.holdEnvironment(q, environment)))
        throw errors.environmentNotFound(environment);
      const id = randomUUID();
      const sealed = sealValue(this.deps.keyring, { secretId: id, key: plan.key, version: 1 }, plan.value);
      // A statement of its own after the insert (q is the change's transaction): an insert
      // that finds the key taken writes nothing, and the caller may revive in the same
      // transaction. A batch collects them in `later` and writes them in one statement.
      const ok = await this.deps.repo.insertNew(
        q,
        { id, environment, key: plan.key, ...plan.meta, createdBy: caller.label },
        sealed,
      );
      if (ok) {
        const side = alongside({ caller, action, key: plan.key, secretId: id, version: 1 });
        if (opts.later) opts.later.push(side);
        else await this.deps.repo.appendAlongside(q, [side]);
      }
      return { id, revision: ok ? FIRST_REVISION : undefined, version: 1 };
    }
    const { cur } = plan;
    if (plan.kind === 'purge') {
      const side = alongside({
        caller,
        action,
        key: plan.key,
        secretId: cur.id,
        version: cur.current_version,
      });
      await this.deps.repo.purge(q, [cur.id], side);
      return { id: cur.id, revision: cur.revision, version: cur.current_version };
    }
    const { value, ...rest } = plan.patch;
    const number = cur.current_version + 1;
    const patch: SecretPatch =
      value === undefined
        ? rest
        : {
            ...rest,
            version: {
              number,
              createdBy: caller.label,
              keep: this.deps.maxVersions,
              sealed: sealValue(
                this.deps.keyring,
                { secretId: cur.id, key: cur.key, version: number },
                value,
              ),
            },
          };
    const version = patch.version?.number ?? cur.current_version;
    const side = alongside({ caller, action, key: plan.key, secretId: cur.id, version, patch });
    const revision = await this.deps.repo.updateRow(q, cur, patch, side);
    if (revision === undefined && !opts.guarded)
      throw new Error(`secret ${cur.id} changed under its row lock`);
    return { id: cur.id, revision, version };
  }

  /**
   * planChange then writeChange: the door for a change that needs no look at the plan. Named
   * apart from the trail's `change`, which wraps it, so a reader of a call knows which it is.
   */
  async planAndWrite(
    q: Queryable,
    caller: Caller,
    action: AuditAction,
    op: ChangeOp,
    opts: { named?: boolean; guarded?: boolean } = {},
  ): Promise<Written> {
    return this.writeChange(q, caller, action, this.planChange(caller, op, opts), opts);
  }

  /**
   * Erases every soft-deleted secret of the caller's environment (a deleted environment's,
   * run under that environment's exclusive lock) through the door, as purges: per secret
   * the rows of a single purge (its secret.purge audit row and secret.purged event, its
   * ETags taken out of earlier events, its expiry notices gone), written ERASE_BATCH
   * secrets at a time in two statements (their `alongside` rows with appendAlongside, then
   * SecretsRepository.purge). Reserved ones are erased too (the environment goes, so do
   * they): the plans are built here, not by planChange, whose purge rule refuses reserved
   * secrets. Returns what was erased, in key order.
   */
  async eraseInactive(q: Queryable, caller: Caller): Promise<Written[]> {
    const inactive = await this.deps.repo.lockInactive(q, environmentOf(caller));
    for (let i = 0; i < inactive.length; i += ERASE_BATCH) {
      const batch = inactive.slice(i, i + ERASE_BATCH);
      await this.deps.repo.appendAlongside(
        q,
        batch.map((cur) =>
          alongside({
            caller,
            action: 'secret.purge',
            key: cur.key,
            secretId: cur.id,
            version: cur.current_version,
          }),
        ),
      );
      await this.deps.repo.purge(
        q,
        batch.map((cur) => cur.id),
      );
    }
    return inactive.map((cur) => ({ id: cur.id, revision: cur.revision, version: cur.current_version }));
  }

  /**
   * A key rotation's batch: the secrets it touched (rewrapped, or failed their integrity
   * check), recorded on the batch's own transaction after its rewrap statement.
   */
  rotated(caller: Caller) {
    return (
      q: Queryable,
      touched: readonly { key: string; secretId: string; version: number; outcome: AuditOutcome }[],
    ) =>
      this.deps.repo.appendAlongside(
        q,
        touched.map((t) =>
          alongside(
            { caller, action: 'secret.rotate', key: t.key, secretId: t.secretId, version: t.version },
            t.outcome,
          ),
        ),
      );
  }
}

/** The door for a caller that builds it alone (the CLI's rewrap, tests). */
export function createChanges(deps: ChangesDeps): Changes {
  return new Changes(deps);
}
