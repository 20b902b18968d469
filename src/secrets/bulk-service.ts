import type { Logger } from 'pino';
import { type AuditOutcome, outcomeOf, withOutcome } from '../audit/outcome.js';
import type { AuditTrail, ReadOutcome, Touched } from '../audit/trail.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database } from '../db/database.js';
import { errors } from '../errors.js';
import { type Caller, environmentOf } from '../identity/caller.js';
import { maySee } from '../identity/visibility.js';
import { inChunks } from '../in-chunks.js';
import { MAX_BATCH } from './batch-schemas.js';
import type { BulkRepository, ValueRow } from './bulk-repository.js';
import { dotenvUnrepresentable, type ExportedSecrets, toDotenv } from './export-format.js';
import { openSealed } from './open-sealed.js';
import { renderedBytes, renderTemplate, templateReferences } from './template.js';

/**
 * Export and templates: many values at once, each decrypted fail-closed. Each leaves one
 * audit row per secret it touched (by name), group-committed and awaited before the
 * response: `success` for the values returned, `decrypt_failed` for one that did not
 * authenticate, `withheld` for values read but not returned because the request failed.
 */

/**
 * Counts `n` values against the caller's read limit (READ_RATE_LIMIT), or throws 429. Called
 * before the values are returned, so a refused read leaves no "success" audit row.
 */
export type Charge = (n: number) => Promise<void>;

/**
 * The longest key the one row of a refused render gives its names in (within the audit
 * trail's RECORDED_TEXT_MAX, with room for the "+N more" tail).
 */
const RENDER_REFUSAL_NAMES_MAX = 200;

/** What an export reads: the secrets under `prefix` (all when absent), charged to the caller's read limit. */
export interface ExportInput {
  prefix?: string | undefined;
  charge: Charge;
}

export interface BulkServiceDeps {
  db: Database;
  repo: BulkRepository;
  trail: AuditTrail;
  keyring: Keyring;
  log: Logger;
  /** The largest rendered template, in bytes of UTF-8 (MAX_RENDER_BYTES). */
  maxRenderBytes: number;
}

/** Export and templates: many values at once, each read and audited as one attempt. */
export class BulkService {
  constructor(private readonly deps: BulkServiceDeps) {}

  /** format json: { KEY: value } in key order. */
  exportJson({ prefix, charge }: ExportInput, caller: Caller) {
    return this.exportValues(prefix, caller, charge, (v) => v);
  }

  /** format dotenv: KEY='value' lines that the dotenv package parses back to the same values. */
  exportDotenv({ prefix, charge }: ExportInput, caller: Caller) {
    return this.exportValues(prefix, caller, charge, (values) => {
      const bad = dotenvUnrepresentable(values);
      if (bad.length > 0) {
        throw errors.invalidInput(
          `Cannot write as dotenv without altering them: ${bad.join(', ')} (each value contains ', \` and ", or a carriage return with a literal \\n or \\r)`,
          'Use format=json, or export a prefix that excludes them',
        );
      }
      return toDotenv(values);
    });
  }

  /**
   * One audit row per referenced secret (a template without references leaves one row, key
   * null). A render refused for its names (unresolved, not visible, over the read limit)
   * leaves one row however many it names (namesRow).
   */
  async render({ template, charge }: { template: string; charge: Charge }, caller: Caller): Promise<string> {
    const { keys, invalid } = templateReferences(template);
    return this.deps.trail.read(caller, 'secret.render', null, async (): Promise<ReadOutcome<string>> => {
      // Bounded work: a template names at most as many secrets as an import may hold, and
      // this refusal leaves one audit row, not one per name.
      if (keys.length + invalid.length > MAX_BATCH) {
        const error = errors.invalidInput(
          `The template names ${keys.length + invalid.length} distinct secrets; at most ${MAX_BATCH} are allowed`,
          'Render it in parts',
        );
        return { ok: false, error, touched: [] };
      }
      const refused = keys.filter((k) => !maySee(caller.visible, k));
      if (refused.length > 0) {
        const error = withOutcome(
          errors.denied(
            `This access key may not read: ${refused.join(', ')}`,
            'Use an access key whose keys patterns cover every referenced secret',
          ),
          'denied',
        );
        return { ok: false, error, touched: [namesRow(refused, 'denied')] };
      }
      // Every name counts against the read limit, found or not: probing for names costs
      // the same as reading them. Over the limit, nothing is read.
      try {
        await charge(keys.length);
      } catch (error) {
        return { ok: false, error, touched: [namesRow(keys, outcomeOf(error))] };
      }
      // Within the environment the template is rendered in.
      const rows =
        keys.length > 0
          ? await this.deps.repo.readableValuesByKeys(this.deps.db, keys, environmentOf(caller))
          : [];
      const locked = injectRefused(
        rows,
        caller,
        'The template references',
        'Remove those references, or use such an access key',
      );
      if (locked) return locked;
      // Unresolved references refuse the render before any value is opened: one row.
      const found = new Set(rows.map((r) => r.key));
      const unresolved = [...invalid, ...keys.filter((k) => !found.has(k))];
      if (unresolved.length > 0) {
        const error = errors.invalidInput(
          `Unresolved secret reference(s): ${unresolved.join(', ')}`,
          'Create the missing secrets (or reactivate them, or clear their expiry), or fix the names; see GET /api/secrets',
        );
        return { ok: false, error, touched: [namesRow(unresolved, 'not_found')] };
      }
      const opened = await this.openAll(rows);
      if (opened.error !== undefined) return { ok: false, error: opened.error, touched: opened.touched };
      // Counted as references resolve, before anything is built (MAX_RENDER_BYTES).
      const size = renderedBytes(template, opened.values, this.deps.maxRenderBytes);
      if (size > this.deps.maxRenderBytes) {
        const error = errors.renderTooLarge(this.deps.maxRenderBytes, size);
        return { ok: false, error, touched: withheld(opened.touched) };
      }
      return { ok: true, result: renderTemplate(template, opened.values), touched: opened.touched };
    });
  }

  /**
   * Opens every row; the first failure fails them all (the others are then withheld).
   * Between chunks of YIELD_EVERY rows it yields to the event loop, so a large export or
   * render does not hold it: other requests (and, on PGlite, their statements, which run on
   * this same thread) are served between chunks.
   */
  private async openAll(
    rows: ValueRow[],
  ): Promise<{ values: Map<string, string>; touched: Touched[]; error?: unknown }> {
    const values = new Map<string, string>();
    const touched: Touched[] = [];
    let error: unknown;
    await inChunks(rows, (row) => {
      try {
        values.set(
          row.key,
          openSealed(
            this.deps.keyring,
            this.deps.log,
            { secretId: row.id, key: row.key, version: row.version },
            row,
          ),
        );
        touched.push({ key: row.key, version: row.version, outcome: 'success' });
      } catch (err) {
        error ??= err;
        touched.push({ key: row.key, version: row.version, outcome: outcomeOf(err) });
      }
    });
    return error === undefined ? { values, touched } : { values, touched: withheld(touched), error };
  }

  /** Reads the visible readable secrets under `prefix`, then shapes them; a shaping error withholds all. */
  private exportValues<T>(
    prefix: string | undefined,
    caller: Caller,
    charge: Charge,
    shape: (values: ExportedSecrets) => T,
  ): Promise<T> {
    return this.deps.trail.read(
      caller,
      'secret.export',
      prefix ?? null,
      async (): Promise<ReadOutcome<T>> => {
        // Filtered in SQL: rows outside a restricted access key's view are never read.
        const rows = await this.deps.repo.readableValues(
          this.deps.db,
          prefix,
          caller.visible,
          environmentOf(caller),
        );
        const locked = injectRefused(
          rows,
          caller,
          'The export includes',
          'Export a prefix that excludes them, or use such an access key',
        );
        if (locked) return locked;
        const paid = await charged(rows, charge);
        if (!paid.ok) return paid;
        const opened = await this.openAll(rows);
        if (opened.error !== undefined) return { ok: false, error: opened.error, touched: opened.touched };
        // A null-prototype object: a key can never collide with Object.prototype members.
        const out: ExportedSecrets = Object.create(null);
        for (const [k, v] of opened.values) out[k] = v;
        try {
          return { ok: true, result: shape(out), touched: opened.touched };
        } catch (error) {
          return { ok: false, error, touched: withheld(opened.touched) };
        }
      },
    );
  }
}

/** The service for a caller that builds it alone. */
export function createBulkService(deps: BulkServiceDeps): BulkService {
  return new BulkService(deps);
}

/**
 * The one row of a render refused for the names it gave (unresolved, not visible, over the
 * read limit), however many it gave: the name itself when there is one, else their count
 * and as many names as fit a bounded key (RENDER_REFUSAL_NAMES_MAX characters).
 */
function namesRow(names: readonly string[], outcome: AuditOutcome): Touched {
  if (names.length === 1) return { key: names[0]!, outcome };
  let key = `${names.length} names:`;
  let i = 0;
  for (; i < names.length; i++) {
    const next = `${i === 0 ? ' ' : ', '}${names[i]}`;
    if (key.length + next.length > RENDER_REFUSAL_NAMES_MAX) break;
    key += next;
  }
  if (i < names.length) key += `, +${names.length - i} more`;
  return { key, outcome };
}

const withheld = (touched: Touched[]): Touched[] =>
  touched.map((t) => (t.outcome === 'success' ? { ...t, outcome: 'withheld' } : t));

/**
 * Write-only values go only to callers holding secrets:inject. Otherwise the whole request
 * is refused (403, one `denied` row per write-only secret, nothing read is opened): an
 * export quietly missing some keys would start a workload without them.
 */
function injectRefused(rows: ValueRow[], caller: Caller, what: string, fix: string) {
  if (caller.mayInject) return undefined;
  const locked = rows.filter((r) => r.write_only).map((r) => r.key);
  if (locked.length === 0) return undefined;
  const error = withOutcome(
    errors.denied(
      `${what} write-only secret(s) this credential may not receive: ${locked.join(', ')}`,
      `Write-only values are delivered only to access keys holding the secrets:inject scope (with secrets:read); an admin token never receives them. ${fix}`,
    ),
    'denied',
  );
  return {
    ok: false as const,
    error,
    touched: locked.map((key): Touched => ({ key, outcome: 'denied' })),
  };
}

/** Counts the values about to be returned; over the read limit, every one is refused (rate_limited). */
async function charged(
  rows: ValueRow[],
  charge: Charge,
): Promise<{ ok: true } | { ok: false; error: unknown; touched: Touched[] }> {
  try {
    await charge(rows.length);
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      error,
      touched: rows.map((r) => ({ key: r.key, version: r.version, outcome: outcomeOf(error) })),
    };
  }
}
