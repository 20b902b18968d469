import type { Logger } from 'pino';
import type { AuditAction } from '../audit/entry.js';
import type { AuditRepository } from '../audit/repository.js';
import { type Actor, mayTouchKey, splitPatterns } from '../auth/actor.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Queryable } from '../db/database.js';
import { AppError, errors } from '../http/errors.js';
import type { BulkRepository, ValueRow } from './bulk-repository.js';
import { dotenvUnrepresentable, type ExportedSecrets, toDotenv } from './export-format.js';
import { openSealed } from './open-sealed.js';
import type { Who } from './service.js';
import { renderedBytes, renderTemplate, templateReferences } from './template.js';

/** Export and templates: many values at once, each decrypted fail-closed. */

/**
 * Counts `n` values against the caller's read limit (READ_RATE_LIMIT), or throws 429. Called
 * inside the read's transaction, so a refused read leaves no "success" audit row.
 */
export type Charge = (n: number) => Promise<void>;

export interface BulkServiceDeps {
  db: Database;
  repo: BulkRepository;
  audit: AuditRepository;
  keyring: Keyring;
  log: Logger;
  /** The largest rendered template, in bytes of UTF-8 (MAX_RENDER_BYTES). */
  maxRenderBytes: number;
}

export function createBulkService({ db, repo, audit, keyring, log, maxRenderBytes }: BulkServiceDeps) {
  /**
   * Reads values and appends the audit row in one transaction, so a read whose audit row
   * cannot be written returns nothing (like a single read). The read itself is one
   * statement: one snapshot.
   */
  function auditedRead<T>(
    who: Who,
    action: AuditAction,
    key: string | null,
    read: (q: Queryable) => Promise<T>,
  ) {
    return db.transaction(async (tx) => {
      await audit.append(tx, { ...who, action, key, outcome: 'success' });
      return read(tx);
    });
  }

  const open = (row: ValueRow) =>
    openSealed(keyring, log, { secretId: row.id, key: row.key, version: row.version }, row);

  async function exportValues(
    prefix: string | undefined,
    who: Who,
    actor: Actor,
    charge: Charge,
  ): Promise<ExportedSecrets> {
    // An access key restricted to some keys exports only those, filtered in SQL (rows
    // outside its view are never read).
    const visible =
      actor.kind === 'access_key' && actor.keys !== null ? splitPatterns(actor.keys) : undefined;
    const rows = await auditedRead(who, 'secret.export', prefix ?? null, async (q) => {
      const found = await repo.readableValues(q, prefix, visible);
      await charge(found.length);
      return found;
    });
    // A null-prototype object: a key can never collide with Object.prototype members.
    const out: ExportedSecrets = Object.create(null);
    for (const row of rows) out[row.key] = open(row);
    return out;
  }

  return {
    /** format json: { KEY: value } in key order. */
    exportJson: exportValues,

    /** format dotenv: KEY='value' lines that the dotenv package parses back to the same values. */
    async exportDotenv(prefix: string | undefined, who: Who, actor: Actor, charge: Charge): Promise<string> {
      const values = await exportValues(prefix, who, actor, charge);
      const bad = dotenvUnrepresentable(values);
      if (bad.length > 0) {
        throw errors.invalidInput(
          `Cannot write as dotenv without altering them: ${bad.join(', ')} (each value contains ', \` and ", or a carriage return with a literal \\n or \\r)`,
          'Use format=json, or export a prefix that excludes them',
        );
      }
      return toDotenv(values);
    },

    async render(template: string, who: Who, actor: Actor, charge: Charge): Promise<string> {
      const { keys, invalid } = templateReferences(template);
      const refused = keys.filter((k) => !mayTouchKey(actor, k));
      if (refused.length > 0) {
        throw errors.forbidden(
          `This access key may not read: ${refused.join(', ')}`,
          'Use an access key whose keys patterns cover every referenced secret',
        );
      }
      const rows =
        keys.length > 0
          ? await auditedRead(who, 'secret.render', null, async (q) => {
              const found = await repo.readableValuesByKeys(q, keys);
              await charge(found.length);
              return found;
            })
          : [];
      const values = new Map(rows.map((r) => [r.key, open(r)] as const));
      const unresolved = [...invalid, ...keys.filter((k) => !values.has(k))];
      if (unresolved.length > 0) {
        throw errors.invalidInput(
          `Unresolved secret reference(s): ${unresolved.join(', ')}`,
          'Create the missing secrets (or reactivate them, or clear their expiry), or fix the names; see GET /api/secrets',
        );
      }
      const size = renderedBytes(template, values, maxRenderBytes);
      if (size > maxRenderBytes) {
        throw new AppError(
          413,
          'PAYLOAD_TOO_LARGE',
          `The rendered template would exceed ${maxRenderBytes} bytes (MAX_RENDER_BYTES)${size > maxRenderBytes * 2 ? '' : `: ${size} bytes`}`,
          'Reference fewer or smaller secrets per template, or render it in parts',
        );
      }
      return renderTemplate(template, values);
    },
  };
}

export type BulkService = ReturnType<typeof createBulkService>;
