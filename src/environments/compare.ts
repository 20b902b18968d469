import type { Logger } from 'pino';
import { outcomeOf } from '../audit/outcome.js';
import type { AuditTrail, ReadOutcome, Touched } from '../audit/trail.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Database, Queryable } from '../db/database.js';
import { type CryptoColumns, cryptoColumns } from '../db/sealed-columns.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import type { Caller } from '../identity/caller.js';
import { type Visibility, visibilitySql } from '../identity/visibility.js';
import { secretEtag } from '../secrets/etag.js';
import { openSealed } from '../secrets/open-sealed.js';

/**
 * GET /api/environments/:a/compare/:b: which keys are only in a, only in b, or in both with
 * equal or different values. Values are opened and compared here and never returned; each
 * value compared is a read, audited (environment.compare, one row per secret per side)
 * before the answer goes out. Only active, unexpired secrets the caller may see count.
 */

/** Secrets per side a comparison reads at most; beyond it the caller narrows with prefix. */
export const MAX_COMPARED = 1000;

export type CompareStatus = 'only_in_a' | 'only_in_b' | 'equal' | 'different' | 'not_compared';

export interface ComparedKey {
  key: string;
  status: CompareStatus;
  /** Why a key in both was not compared: write_only (no secrets:inject), or unreadable (failed its integrity check). */
  reason?: 'write_only' | 'unreadable';
  /** The ETags on each side: what promote's compare-and-set names. */
  etagA?: string;
  etagB?: string;
}

interface SideRow extends CryptoColumns {
  id: string;
  key: string;
  version: number;
  write_only: boolean;
  revision: string;
}

async function readSide(
  q: Queryable,
  environment: string,
  prefix: string | undefined,
  visible: Visibility,
): Promise<SideRow[]> {
  const params: unknown[] = [environment, prefix ?? '', MAX_COMPARED + 1];
  const cond = visibilitySql(visible, 's.key', params);
  return q.query<SideRow>(
    `SELECT s.id, s.key, s.current_version AS version, s.write_only, s.revision::text AS revision, ${cryptoColumns('v')}
     FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
     WHERE s.environment = $1 AND s.is_active AND (s.expires_at IS NULL OR s.expires_at > now())
       AND starts_with(s.key, $2) ${cond ? `AND ${cond}` : ''}
     ORDER BY s.key LIMIT $3`,
    params,
  );
}

/**
 * The second environment of a compare or promote passes the checks the guard applies to the
 * first (the path's :env): covered by the credential (403 before anything is looked up), then
 * existing (404).
 */
export async function checkSecondEnvironment(
  b: string,
  caller: Caller,
  exists: (name: string) => Promise<boolean>,
): Promise<void> {
  if (caller.environments !== null && !caller.environments.includes(b)) {
    throw errors.denied(
      `This credential does not cover the environment ${b}`,
      'Use an access key whose environments include both, or an admin token',
    );
  }
  if (b !== DEFAULT_ENVIRONMENT && !(await exists(b))) throw errors.environmentNotFound(b);
}

export interface CompareServiceDeps {
  db: Database;
  trail: AuditTrail;
  keyring: Keyring;
  log: Logger;
  exists: (name: string) => Promise<boolean>;
}

/** Compares two environments' values (audited reads; values never leave the server). */
export class CompareService {
  constructor(private readonly deps: CompareServiceDeps) {}

  async compare(
    a: string,
    b: string,
    opts: { prefix?: string | undefined },
    caller: Caller,
  ): Promise<{ a: string; b: string; keys: ComparedKey[] }> {
    try {
      await checkSecondEnvironment(b, caller, this.deps.exists);
    } catch (err) {
      await this.deps.trail.refused(caller, 'environment.compare', [null], err);
      throw err;
    }
    return this.deps.trail.read(
      caller,
      'environment.compare',
      null,
      async (): Promise<ReadOutcome<{ a: string; b: string; keys: ComparedKey[] }>> => {
        // One transaction, so both sides are one snapshot.
        const [left, right] = await this.deps.db.transaction(async (tx) => [
          await readSide(tx, a, opts.prefix, caller.visible),
          await readSide(tx, b, opts.prefix, caller.visible),
        ]);
        if (left.length > MAX_COMPARED || right.length > MAX_COMPARED) {
          const err = errors.invalidInput(
            `More than ${MAX_COMPARED} secrets to compare on one side`,
            'Narrow the comparison with ?prefix=...',
          );
          return { ok: false, error: err, touched: [] };
        }
        const byKey = new Map(right.map((r) => [r.key, r]));
        const touched: Touched[] = [];
        const keys: ComparedKey[] = [];
        const open = (r: SideRow) =>
          openSealed(this.deps.keyring, this.deps.log, { secretId: r.id, key: r.key, version: r.version }, r);
        for (const l of left) {
          const r = byKey.get(l.key);
          const etagA = secretEtag(l.id, l.revision);
          if (!r) {
            keys.push({ key: l.key, status: 'only_in_a', etagA });
            continue;
          }
          byKey.delete(l.key);
          const etagB = secretEtag(r.id, r.revision);
          if ((l.write_only || r.write_only) && !caller.mayInject) {
            keys.push({ key: l.key, status: 'not_compared', reason: 'write_only', etagA, etagB });
            continue;
          }
          const sides: [SideRow, string][] = [
            [l, a],
            [r, b],
          ];
          const values: string[] = [];
          let failed: unknown;
          for (const [row, environment] of sides) {
            try {
              values.push(open(row));
              touched.push({ key: row.key, version: row.version, outcome: 'success', environment });
            } catch (err) {
              failed ??= err;
              touched.push({ key: row.key, version: row.version, outcome: outcomeOf(err), environment });
            }
          }
          if (failed) keys.push({ key: l.key, status: 'not_compared', reason: 'unreadable', etagA, etagB });
          else
            keys.push({
              key: l.key,
              status: values[0] === values[1] ? 'equal' : 'different',
              etagA,
              etagB,
            });
        }
        for (const r of byKey.values())
          keys.push({ key: r.key, status: 'only_in_b', etagB: secretEtag(r.id, r.revision) });
        keys.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
        return { ok: true, touched, result: { a, b, keys } };
      },
    );
  }
}
