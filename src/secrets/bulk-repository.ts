import type { Queryable } from '../db/database.js';
import type { CryptoColumns } from './repository.js';

/** SQL for the many-at-once reads (export, templates). Every method takes the Queryable to run on. */

export interface ValueRow extends CryptoColumns {
  id: string;
  key: string;
  version: number;
}

const VALUE_COLUMNS = `s.id, s.key, s.current_version AS version,
  v.format, v.kid, v.wrapped_dek, v.dek_iv, v.dek_tag, v.iv, v.tag, v.ciphertext`;
const READABLE = `s.is_active AND (s.expires_at IS NULL OR s.expires_at > now())`;

export function createBulkRepository() {
  return {
    /**
     * Every active, unexpired secret (optionally under a prefix) with its current sealed
     * value, ordered by key. One statement, so one snapshot: a concurrent update is seen
     * either entirely or not at all, on both backends.
     */
    async readableValues(
      q: Queryable,
      prefix: string | undefined,
      /** Only these keys (a restricted access key's view): exact names or prefixes, filtered in SQL. */
      visible?: { exact: string[]; prefixes: string[] },
    ): Promise<ValueRow[]> {
      const params: unknown[] = [prefix ?? ''];
      let only = '';
      if (visible) {
        params.push(visible.exact, visible.prefixes);
        only = `AND (s.key = ANY($2::text[]) OR EXISTS (SELECT 1 FROM unnest($3::text[]) p WHERE starts_with(s.key, p)))`;
      }
      return q.query<ValueRow>(
        `SELECT ${VALUE_COLUMNS}
         FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
         WHERE ${READABLE} AND starts_with(s.key, $1) ${only}
         ORDER BY s.key`,
        params,
      );
    },

    /** The readable secrets among `keys`, in one statement; missing, inactive and expired ones are absent. */
    async readableValuesByKeys(q: Queryable, keys: readonly string[]): Promise<ValueRow[]> {
      return q.query<ValueRow>(
        `SELECT ${VALUE_COLUMNS}
         FROM secrets s JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
         WHERE ${READABLE} AND s.key = ANY($1::text[])`,
        [keys],
      );
    },
  };
}

export type BulkRepository = ReturnType<typeof createBulkRepository>;
