import type { Queryable } from '../../src/db/database.js';

/**
 * A digest of every data table in the current schema, in plain SQL: "a rejected request
 * changed nothing" is checked by comparing digests before and after. Tables added by
 * later migrations are picked up without changing this file. The audit log is left out:
 * recording every attempt, refused ones included, is its job (its own tests check it). So is
 * the webhook fan-out's cursor (`event_fanout`): the dispatcher moves it in the background,
 * whatever the request; an event a refused request wrote would still show in change_events.
 */
export async function tableDigest(db: Queryable, opts: { ignoreColumns?: string[] } = {}): Promise<string> {
  // Columns a refused request may legitimately move (access_keys.last_used_at) are dropped by name.
  const row = opts.ignoreColumns?.length
    ? `(to_jsonb(r) - ARRAY[${opts.ignoreColumns.map((c) => `'${c}'`).join(',')}]::text[])::text`
    : 'r::text';
  const tables = await db.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
     AND tablename NOT IN ('schema_migrations', 'audit_log', 'audit_chain_head', 'audit_seals', 'audit_anchor', 'event_fanout')
     AND tablename NOT LIKE 'audit\\_log\\_%' ORDER BY tablename`,
  );
  const parts = tables.map(
    (t) =>
      `SELECT '${t.tablename}' AS t, md5(coalesce(string_agg(${row}, '|' ORDER BY ${row}), '')) AS h FROM ${t.tablename} r`,
  );
  const rows = await db.query<{ t: string; h: string }>(parts.join(' UNION ALL '));
  return rows.map((r) => `${r.t}:${r.h}`).join(',');
}
