import type { Queryable } from '../db/database.js';

/** SQL only. Every method takes the Queryable to run on (pool or transaction). */

export interface EnvironmentRow {
  name: string;
  seq: string;
  description: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'name, seq::text AS seq, description, created_at, updated_at';

/** The SQL of environments: each method runs on the Queryable it is given. */
export class EnvironmentsRepository {
  /** Oldest first (default leads), keyset on seq; up to limit + 1 rows; `names` null: all. */
  async listPage(
    q: Queryable,
    opts: { limit: number; afterSeq?: string | undefined; names: readonly string[] | null },
  ): Promise<EnvironmentRow[]> {
    const params: unknown[] = [opts.limit + 1];
    const where: string[] = [];
    if (opts.afterSeq !== undefined) {
      params.push(opts.afterSeq);
      where.push(`seq > $${params.length}::bigint`);
    }
    if (opts.names !== null) {
      params.push([...opts.names]);
      where.push(`name = ANY($${params.length}::text[])`);
    }
    return q.query<EnvironmentRow>(
      `SELECT ${COLUMNS} FROM environments ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY environments.seq LIMIT $1`,
      params,
    );
  }

  /**
   * One environment; `lock` 'share' keeps it from being deleted until the transaction ends
   * (a create in it), 'update' excludes every such create (its deletion).
   */
  async find(q: Queryable, name: string, lock?: 'share' | 'update'): Promise<EnvironmentRow | undefined> {
    const suffix = lock === 'share' ? ' FOR KEY SHARE' : lock === 'update' ? ' FOR UPDATE' : '';
    const rows = await q.query<EnvironmentRow>(
      `SELECT ${COLUMNS} FROM environments WHERE name = $1${suffix}`,
      [name],
      { name: `environment_find${lock ? `_${lock}` : ''}` },
    );
    return rows[0];
  }

  /** The names among `names` that exist. */
  async existing(q: Queryable, names: readonly string[]): Promise<string[]> {
    const rows = await q.query<{ name: string }>(
      'SELECT name FROM environments WHERE name = ANY($1::text[])',
      [[...names]],
    );
    return rows.map((r) => r.name);
  }

  /** Undefined when the name is taken. */
  async insert(
    q: Queryable,
    e: { name: string; description: string | null },
  ): Promise<EnvironmentRow | undefined> {
    const rows = await q.query<EnvironmentRow>(
      `INSERT INTO environments (name, description) VALUES ($1, $2)
       ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      [e.name, e.description],
    );
    return rows[0];
  }

  async updateRow(
    q: Queryable,
    name: string,
    description: string | null,
  ): Promise<EnvironmentRow | undefined> {
    const rows = await q.query<EnvironmentRow>(
      `UPDATE environments SET description = $2, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
      [name, description],
    );
    return rows[0];
  }

  /** Active and soft-deleted secrets in the environment. */
  async counts(q: Queryable, name: string): Promise<{ active: number; inactive: number }> {
    const rows = await q.query<{ active: number; inactive: number }>(
      `SELECT count(*) FILTER (WHERE is_active)::int AS active, count(*) FILTER (WHERE NOT is_active)::int AS inactive
       FROM secrets WHERE environment = $1`,
      [name],
    );
    return rows[0] ?? { active: 0, inactive: 0 };
  }

  /**
   * Erases the environment's row if it holds no secret; false (nothing erased) when one is
   * left. Run under its FOR UPDATE lock once its soft-deleted secrets are erased (through the
   * door: Changes.eraseInactive). The check is what keeps a secret from outliving its
   * environment (secrets name it without a foreign key, migrations/007): a restore takes no
   * lock on the environment, and one that commits while the deletion waits for the secret's
   * row makes it active again, so the erasure skips it; this statement, with a snapshot
   * taken after that commit, sees it.
   */
  async deleteIfEmpty(q: Queryable, name: string): Promise<boolean> {
    const rows = await q.query(
      `DELETE FROM environments WHERE name = $1
       AND NOT EXISTS (SELECT 1 FROM secrets WHERE environment = $1) RETURNING 1`,
      [name],
    );
    return rows.length === 1;
  }
}
