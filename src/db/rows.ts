import type { Queryable } from './database.js';

/**
 * Newest-first keyset paging on a seq column: up to limit + 1 rows (the extra one tells
 * that a next page exists) before the given position. `select` is the SELECT ... FROM part;
 * `seq` names the column, qualified as the FROM clause needs.
 */
export function newestFirst<R>(
  q: Queryable,
  select: string,
  seq: string,
  page: { limit: number; beforeSeq?: string | undefined },
): Promise<R[]> {
  const params: unknown[] = [page.limit + 1];
  let where = '';
  if (page.beforeSeq !== undefined) {
    params.push(page.beforeSeq);
    where = `WHERE ${seq} < $2::bigint`;
  }
  return q.query<R>(`${select} ${where} ORDER BY ${seq} DESC LIMIT $1`, params);
}

/** The parameters of an `unnest($1::t[], $2::t[], ...)`: one array a field, in the order named. */
export const columnsOf = <R, K extends keyof R>(rows: readonly R[], ...keys: K[]): R[K][][] =>
  keys.map((k) => rows.map((r) => r[k]));
