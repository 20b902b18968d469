import type { Queryable } from '../db/database.js';
import { type CryptoColumns, cryptoColumns } from '../db/sealed-columns.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { type Visibility, visibilitySql } from '../identity/visibility.js';

/**
 * SQL for the many-at-once reads (export, templates). Every method takes the Queryable to run
 * on, and reads within one environment (the unique index leads with it).
 */

export interface ValueRow extends CryptoColumns {
  id: string;
  key: string;
  version: number;
  /** Delivered only to callers holding secrets:inject. */
  write_only: boolean;
}

const VALUE_COLUMNS = `s.id, s.key, s.current_version AS version, s.write_only,
  ${cryptoColumns('v')}`;
const READABLE = `s.is_active AND (s.expires_at IS NULL OR s.expires_at > now())`;

export class BulkRepository {
  /**
   * Every active, unexpired secret (optionally under a prefix) with its current sealed
   * value, ordered by key. One statement, so one snapshot: a concurrent update is seen
   * either entirely or not at all, on both backends.
   */
  async readableValues(
    q: Queryable,
    prefix: string | undefined,
    /** The caller's view, filtered in SQL (rows outside it are never read). */
    visible: Visibility,
    environment: string = DEFAULT_ENVIRONMENT,
  ): Promise<ValueRow[]> {
    const params: unknown[] = [prefix ?? '', environment];
    const cond = visibilitySql(visible, 's.key', params);
    const only = cond ? `AND ${cond}` : '';
    return q.query<ValueRow>(
      `SELECT ${VALUE_COLUMNS}
       FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
       WHERE s.environment = $2 AND ${READABLE} AND starts_with(s.key, $1) ${only}
       ORDER BY s.key`,
      params,
    );
  }

  /** The readable secrets among `keys`, in one statement; missing, inactive and expired ones are absent. */
  async readableValuesByKeys(
    q: Queryable,
    keys: readonly string[],
    environment: string = DEFAULT_ENVIRONMENT,
  ): Promise<ValueRow[]> {
    return q.query<ValueRow>(
      `SELECT ${VALUE_COLUMNS}
       FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
       WHERE s.environment = $2 AND ${READABLE} AND s.key = ANY($1::text[])`,
      [keys, environment],
    );
  }
}

/** One repository for a caller that builds it alone. */
export function createBulkRepository(): BulkRepository {
  return new BulkRepository();
}
