import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { IntegrityError, openValue, sealValue } from '../crypto/envelope.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { errors } from '../http/errors.js';
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
const INT8_MAX = 9_223_372_036_854_775_807n;
function decodeCursor(cursor: string): string {
  const m = /^v1:([1-9][0-9]{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  // 19 digits can exceed bigint's range; the cast in SQL would then fail with a 500.
  if (!m?.[1] || BigInt(m[1]) > INT8_MAX)
    throw errors.invalidInput('Invalid cursor: pass the nextCursor value of a previous page unchanged');
  return m[1];
}

const notFound = (key: string) =>
  errors.notFound(
    `Secret not found: ${key}`,
    'Check the key name with GET /api/secrets, or create it with POST /api/secrets',
  );

export interface SecretServiceDeps {
  db: Database;
  repo: SecretsRepository;
  keyring: Keyring;
  log: Logger;
  maxValueBytes: number;
  /** Default page size and ceiling for the list. */
  maxListLimit?: number;
}

export function createSecretService({
  db,
  repo,
  keyring,
  log,
  maxValueBytes,
  maxListLimit = 1000,
}: SecretServiceDeps) {
  function checkValue(value: string) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxValueBytes) {
      throw errors.payloadTooLarge(`value is ${bytes} bytes of UTF-8; the limit is ${maxValueBytes} bytes`);
    }
  }

  return {
    async list(opts: {
      limit?: number | undefined;
      cursor?: string | undefined;
      prefix?: string | undefined;
      active?: boolean | undefined;
    }) {
      const limit = Math.min(opts.limit ?? maxListLimit, maxListLimit);
      const rows = await repo.list(db, {
        limit,
        beforeSeq: opts.cursor === undefined ? undefined : decodeCursor(opts.cursor),
        prefix: opts.prefix,
        active: opts.active,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        secrets: page.map(toMetadata),
        nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null,
      };
    },

    async create(input: CreateInput, actor: string): Promise<{ id: string; revived: boolean }> {
      checkValue(input.value);
      const id = randomUUID();
      const sealed = sealValue(keyring, { secretId: id, key: input.key, version: 1 }, input.value);
      const meta = {
        id,
        key: input.key,
        description: input.description ?? null,
        isReserved: input.isReserved ?? false,
        expiresAt: input.expiresAt ?? null,
        createdBy: actor,
      };
      if (await repo.insertNew(db, meta, sealed)) return { id, revived: false };

      // The key exists. Active: conflict. Soft-deleted: revive it under its own id, as a new version.
      return db.transaction(async (tx) => {
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
            createdBy: actor,
            sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version }, input.value),
          },
        });
        return { id: cur.id, revived: true };
      });
    },

    async reveal(key: string, actor: string): Promise<{ key: string; value: string }> {
      const row = await repo.reveal(db, key, actor);
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

    async update(key: string, input: UpdateInput, actor: string): Promise<void> {
      if (input.value !== undefined) checkValue(input.value);
      await db.transaction(async (tx) => {
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
                  createdBy: actor,
                  sealed: sealValue(keyring, { secretId: cur.id, key: cur.key, version }, input.value),
                },
        });
      });
    },

    async remove(key: string): Promise<void> {
      await db.transaction(async (tx) => {
        const cur = await repo.findByKey(tx, key, { forUpdate: true });
        if (!cur) throw notFound(key);
        if (cur.is_reserved) {
          throw errors.forbidden(
            `Cannot delete reserved secret: ${key}`,
            'Set isReserved to false with PUT first',
          );
        }
        if (cur.is_active) await repo.update(tx, cur.id, { isActive: false }); // else: already deleted, idempotent
      });
    },
  };
}

export type SecretService = ReturnType<typeof createSecretService>;
