import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditAction, AuditContext } from '../audit/entry.js';
import type { AuditRepository } from '../audit/repository.js';
import { splitPatterns } from '../auth/actor.js';
import { IntegrityError, openValue, sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Transaction } from '../db/database.js';
import { AppError, errors } from '../http/errors.js';
import { type SecretRow, type SecretsRepository, toSealed } from './repository.js';

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
const encodeCursor = (seq: string) => Buffer.from(`v1:${seq}`).toString('base64url');
function decodeCursor(cursor: string): string {
  const m = /^v1:([1-9][0-9]{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m?.[1])
    throw errors.invalidInput('Invalid cursor: pass the nextCursor value of a previous page unchanged');
  return m[1];
}

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
  maxListLimit = 1000,
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
      const beforeSeq = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor);
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
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        secrets: page.map(toMetadata),
        nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null,
      };
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
        const version = cur.current_version + 1;
        await repo.update(tx, cur.id, {
          isActive: true,
          isReserved: meta.isReserved,
          expiresAt: meta.expiresAt,
          description: meta.description,
          version: {
            number: version,
            createdBy: who.label,
            sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version }, input.value),
          },
        });
        return { result: { id: cur.id, revived: true }, version };
      });
    },

    /**
     * One statement reads the value and appends its audit row (src/secrets/repository.ts
     * reveal): a read whose audit row cannot be written fails, and nothing is returned.
     */
    async reveal(key: string, who: Who): Promise<{ key: string; value: string }> {
      const row = await repo.reveal(db, key, who.label, who);
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
      try {
        return {
          key: row.key,
          value: openValue(keyring, { secretId: row.id, key: row.key, version: row.version }, toSealed(row)),
        };
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        log.error(
          { secretKey: key, version: row.version, kid: row.kid, reason: err.message },
          'stored secret failed its integrity check',
        );
        throw errors.integrity(key);
      }
    },

    async update(key: string, input: UpdateInput, who: Who): Promise<void> {
      await audited(who, 'secret.update', key, async (tx) => {
        if (input.value !== undefined) checkValue(input.value);
        const cur = await repo.findByKey(tx, key, { forUpdate: true });
        if (!cur) throw notFound(key);
        if (input.isActive === false && cur.is_reserved) {
          throw errors.forbidden(
            `Cannot deactivate reserved secret: ${key}`,
            'Set isReserved to false first, then deactivate or delete it',
          );
        }
        const version = cur.current_version + 1;
        await repo.update(tx, cur.id, {
          isActive: input.isActive,
          isReserved: input.isReserved,
          expiresAt: input.expiresAt,
          description: input.description,
          version:
            input.value === undefined
              ? undefined
              : {
                  number: version,
                  createdBy: who.label,
                  sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version }, input.value),
                },
        });
        return { result: undefined, version: input.value === undefined ? cur.current_version : version };
      });
    },

    async remove(key: string, who: Who): Promise<void> {
      await audited(who, 'secret.delete', key, async (tx) => {
        const cur = await repo.findByKey(tx, key, { forUpdate: true });
        if (!cur) throw notFound(key);
        if (cur.is_reserved) {
          throw errors.forbidden(
            `Cannot delete reserved secret: ${key}`,
            'Set isReserved to false with PUT first',
          );
        }
        if (cur.is_active) await repo.update(tx, cur.id, { isActive: false }); // else: already deleted, idempotent
        return { result: undefined, version: cur.current_version };
      });
    },
  };
}

export type SecretService = ReturnType<typeof createSecretService>;
