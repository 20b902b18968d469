import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditAction, AuditContext } from '../audit/entry.js';
import type { AuditRepository } from '../audit/repository.js';
import { splitPatterns } from '../auth/actor.js';
import { sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Transaction } from '../db/database.js';
import { AppError, errors } from '../http/errors.js';
import { ifMatchSatisfied, secretEtag } from '../http/etag.js';
import { cursorCodec, MAX_PAGE, pageOf } from '../pagination.js';
import { openSealed } from './open-sealed.js';
import type { CryptoColumns, SecretRow, SecretsRepository } from './repository.js';

/** Rules, transactions and crypto for secrets. Knows nothing of HTTP beyond the typed errors. */

export interface SecretMetadata {
  id: string;
  key: string;
  description: string | null;
  isActive: boolean;
  isReserved: boolean;
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  lastUsedBy: string | null;
  version: number;
}

export interface CreateInput {
  key: string;
  value: string;
  isReserved?: boolean | undefined;
  expiresAt?: Date | null | undefined;
  description?: string | null | undefined;
}

export interface UpdateInput {
  value?: string | undefined;
  isActive?: boolean | undefined;
  isReserved?: boolean | undefined;
  expiresAt?: Date | null | undefined;
  description?: string | null | undefined;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toMetadata(r: SecretRow): SecretMetadata {
  return {
    id: r.id,
    key: r.key,
    description: r.description,
    isActive: r.is_active,
    isReserved: r.is_reserved,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    expiresAt: iso(r.expires_at),
    lastUsedAt: iso(r.last_used_at),
    lastUsedBy: r.last_used_by,
    version: r.current_version,
  };
}

// The list cursor is opaque to clients: base64url of a versioned keyset position.
const cursors = cursorCodec('v1');

const versionNotFound = (key: string, version: number) =>
  errors.notFound(
    `Secret not found: ${key} has no version ${version}`,
    `List the versions that are kept with GET /api/secrets/${key}/versions`,
  );

/** Who asks: the audit identity plus the label lastUsedBy/created_by show. */
export interface Who extends AuditContext {
  label: string;
}

function outcomeOf(err: unknown): string {
  if (!(err instanceof AppError)) return 'error';
  const byStatus: Record<number, string> = {
    400: 'invalid',
    403: 'forbidden',
    404: 'not_found',
    409: 'conflict',
    413: 'too_large',
  };
  return byStatus[err.statusCode] ?? 'error';
}

const notFound = (key: string) =>
  errors.notFound(
    `Secret not found: ${key}`,
    'Check the key name with GET /api/secrets, or create it with POST /api/secrets',
  );

export interface SecretServiceDeps {
  db: Database;
  repo: SecretsRepository;
  audit: AuditRepository;
  keyring: Keyring;
  log: Logger;
  maxValueBytes: number;
  /** Versions kept per secret (MAX_VERSIONS); older ones are pruned when one is added. */
  maxVersions: number;
  /** Default page size and ceiling for the list. */
  maxListLimit?: number;
}

export function createSecretService({
  db,
  repo,
  audit,
  keyring,
  log,
  maxValueBytes,
  maxVersions,
  maxListLimit = MAX_PAGE,
}: SecretServiceDeps) {
  /**
   * Runs a change and appends its audit row in the same transaction. When the change is
   * refused or fails, the transaction rolls back and the refusal is recorded on its own,
   * so every attempt leaves exactly one row.
   */
  async function audited<T>(
    who: Who,
    action: AuditAction,
    key: string,
    work: (tx: Transaction) => Promise<{ result: T; version: number | null }>,
  ): Promise<T> {
    try {
      return await db.transaction(async (tx) => {
        const { result, version } = await work(tx);
        await audit.append(tx, { ...who, action, key, version, outcome: 'success' });
        return result;
      });
    } catch (err) {
      try {
        await audit.append(db, { ...who, action, key, outcome: outcomeOf(err) });
      } catch {
        log.error({ action }, 'audit write for a failed change failed');
      }
      throw err;
    }
  }

  function checkValue(value: string) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxValueBytes) {
      throw errors.payloadTooLarge(`value is ${bytes} bytes of UTF-8; the limit is ${maxValueBytes} bytes`);
    }
  }

  const open = (row: { id: string; key: string }, version: number, sealed: CryptoColumns) =>
    openSealed(keyring, log, { secretId: row.id, key: row.key, version }, sealed);

  /** The secret's row under its lock, checked against If-Match: 404 when absent, 412 when stale. */
  async function lockChecked(tx: Transaction, key: string, ifMatch: string | undefined) {
    const cur = await repo.findByKey(tx, key, { forUpdate: true });
    if (!cur) throw notFound(key);
    const etag = secretEtag(cur.id, cur.revision);
    if (!ifMatchSatisfied(ifMatch, etag)) throw errors.preconditionFailed(etag);
    return cur;
  }

  function newVersion(cur: SecretRow, value: string, actor: string) {
    const number = cur.current_version + 1;
    return {
      number,
      createdBy: actor,
      keep: maxVersions,
      sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version: number }, value),
    };
  }

  return {
    /** `visible`: the key patterns a restricted access key may see (null: all keys). */
    async list(
      opts: {
        limit?: number | undefined;
        cursor?: string | undefined;
        prefix?: string | undefined;
        active?: boolean | undefined;
      },
      who: Who,
      visible: readonly string[] | null = null,
    ) {
      const limit = Math.min(opts.limit ?? maxListLimit, maxListLimit);
      const beforeSeq = opts.cursor === undefined ? undefined : cursors.decode(opts.cursor);
      const rows = await db.transaction(async (tx) => {
        await audit.append(tx, {
          ...who,
          action: 'secret.list',
          key: opts.prefix ?? null,
          outcome: 'success',
        });
        return repo.list(tx, {
          limit,
          beforeSeq,
          prefix: opts.prefix,
          active: opts.active,
          ...(visible ? { visible: splitPatterns(visible) } : {}),
        });
      });
      const { page, nextCursor } = pageOf(rows, limit, (r) => r.seq, cursors.encode);
      return { secrets: page.map(toMetadata), nextCursor };
    },

    async create(input: CreateInput, who: Who): Promise<{ id: string; revived: boolean }> {
      return audited<{ id: string; revived: boolean }>(who, 'secret.create', input.key, async (tx) => {
        checkValue(input.value);
        const id = randomUUID();
        const sealed = sealValue(keyring, { secretId: id, key: input.key, version: 1 }, input.value);
        const meta = {
          id,
          key: input.key,
          description: input.description ?? null,
          isReserved: input.isReserved ?? false,
          expiresAt: input.expiresAt ?? null,
          createdBy: who.label,
        };
        if (await repo.insertNew(tx, meta, sealed)) return { result: { id, revived: false }, version: 1 };

        // The key exists. Active: conflict. Soft-deleted: revive it under its own id, as a new version.
        const cur = await repo.findByKey(tx, input.key, { forUpdate: true });
        if (!cur) throw errors.conflict(`Secret already exists: ${input.key}`, 'Retry the request');
        if (cur.is_active) {
          throw errors.conflict(
            `Secret already exists: ${input.key}`,
            'Use PUT /api/secrets/{key} to change its value, or choose another key',
          );
        }
        const next = newVersion(cur, input.value, who.label);
        await repo.update(tx, cur.id, {
          isActive: true,
          isReserved: meta.isReserved,
          expiresAt: meta.expiresAt,
          description: meta.description,
          version: next,
        });
        return { result: { id: cur.id, revived: true }, version: next.number };
      });
    },

    /**
     * The current value, or version `version`; the same 404 rules apply to every version.
     * One statement reads the value and appends its audit row (repository reveal): a read
     * whose audit row cannot be written fails, and nothing is returned.
     */
    async reveal(
      key: string,
      who: Who,
      version?: number,
    ): Promise<{ key: string; value: string; etag: string }> {
      const row = await repo.reveal(db, key, who.label, who, version);
      if (!row) throw notFound(key);
      if (!row.is_active) {
        throw errors.notFound(
          `Secret not found: ${key} is inactive`,
          'Reactivate it with PUT /api/secrets/{key} {"isActive": true}, or re-create it with POST /api/secrets',
        );
      }
      if (row.expired) {
        throw errors.notFound(
          `Secret not found: ${key} expired at ${iso(row.expires_at)}`,
          'Set a new expiry (or null) with PUT /api/secrets/{key} {"expiresAt": ...}',
        );
      }
      if (!row.has_version) throw versionNotFound(key, row.version);
      return { key: row.key, value: open(row, row.version, row), etag: secretEtag(row.id, row.revision) };
    },

    /** Version metadata, newest first; works for inactive secrets too (it reveals no value). */
    async versions(key: string) {
      const cur = await repo.findByKey(db, key);
      if (!cur) throw notFound(key);
      const rows = await repo.listVersions(db, cur.id);
      return {
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
      };
    },

    /**
     * Stores the value of an older version as a new version. The old value is opened and
     * sealed again under the new number (its AAD names the version), never copied.
     */
    async rollback(key: string, version: number, ifMatch: string | undefined, who: Who) {
      return audited(who, 'secret.rollback', key, async (tx) => {
        const cur = await lockChecked(tx, key, ifMatch);
        const old = await repo.findVersion(tx, cur.id, version);
        if (!old) throw versionNotFound(key, version);
        const next = newVersion(cur, open(cur, version, old), who.label);
        const revision = await repo.update(tx, cur.id, { version: next });
        return { result: { version: next.number, etag: secretEtag(cur.id, revision) }, version: next.number };
      });
    },

    /** Reactivates a soft-deleted secret with its history; restoring an active one changes nothing. */
    async restore(key: string, ifMatch: string | undefined, who: Who): Promise<{ etag: string }> {
      return audited(who, 'secret.restore', key, async (tx) => {
        const cur = await lockChecked(tx, key, ifMatch);
        const version = cur.current_version;
        if (cur.is_active) return { result: { etag: secretEtag(cur.id, cur.revision) }, version };
        return {
          result: { etag: secretEtag(cur.id, await repo.update(tx, cur.id, { isActive: true })) },
          version,
        };
      });
    },

    async update(key: string, input: UpdateInput, who: Who, ifMatch?: string): Promise<{ etag: string }> {
      return audited(who, 'secret.update', key, async (tx) => {
        if (input.value !== undefined) checkValue(input.value);
        const cur = await lockChecked(tx, key, ifMatch);
        if (input.isActive === false && cur.is_reserved) {
          throw errors.forbidden(
            `Cannot deactivate reserved secret: ${key}`,
            'Set isReserved to false first, then deactivate or delete it',
          );
        }
        const next = input.value === undefined ? undefined : newVersion(cur, input.value, who.label);
        const revision = await repo.update(tx, cur.id, {
          isActive: input.isActive,
          isReserved: input.isReserved,
          expiresAt: input.expiresAt,
          description: input.description,
          version: next,
        });
        return {
          result: { etag: secretEtag(cur.id, revision) },
          version: next?.number ?? cur.current_version,
        };
      });
    },

    /**
     * Soft delete (isActive=false), or with `purge` the irreversible erasure of an inactive,
     * non-reserved secret and all its versions. Returns the new ETag (none after a purge).
     */
    async remove(
      key: string,
      who: Who,
      opts: { ifMatch?: string | undefined; purge?: boolean | undefined } = {},
    ): Promise<{ etag: string | undefined }> {
      return audited<{ etag: string | undefined }>(
        who,
        opts.purge ? 'secret.purge' : 'secret.delete',
        key,
        async (tx) => {
          const cur = await lockChecked(tx, key, opts.ifMatch);
          const version = cur.current_version;
          if (cur.is_reserved) {
            throw errors.forbidden(
              `Cannot delete reserved secret: ${key}`,
              'Set isReserved to false with PUT first',
            );
          }
          if (opts.purge) {
            if (cur.is_active) {
              throw errors.conflict(
                `Cannot purge active secret: ${key}`,
                'Delete it first (DELETE /api/secrets/{key}), then purge it',
              );
            }
            await repo.purge(tx, cur.id);
            return { result: { etag: undefined }, version };
          }
          // Already deleted: idempotent.
          if (!cur.is_active) return { result: { etag: secretEtag(cur.id, cur.revision) }, version };
          return {
            result: { etag: secretEtag(cur.id, await repo.update(tx, cur.id, { isActive: false })) },
            version,
          };
        },
      );
    },
  };
}

export type SecretService = ReturnType<typeof createSecretService>;
