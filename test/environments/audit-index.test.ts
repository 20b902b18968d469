import { describe, expect, it } from 'vitest';
import { createAuditRepository } from '../../src/audit/repository.js';
import type { Queryable } from '../../src/db/database.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';

/**
 * GET /api/audit?environment= reads an index (migrations/009), not the whole log: the plan of
 * the list's own statement (src/audit/repository.ts, run under EXPLAIN) over a log where the
 * asked environment is a small part of many rows. default's rows are stored with environment
 * NULL, so `?environment=default` has its own partial index.
 */
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
const a = api(t);
const repo = createAuditRepository();

/** Runs the list's statement under EXPLAIN and returns the plan's text. */
async function planOf(environment: string): Promise<string> {
  const explain: Queryable = {
    query: async <R>(sql: string, params?: readonly unknown[]) =>
      (await t.db.query(`EXPLAIN ${sql}`, params)) as R[],
  };
  const rows = (await repo.list(explain, { limit: 50, environment })) as unknown as Record<string, string>[];
  return rows.map((r) => Object.values(r)[0]).join('\n');
}

/** The index and the indexes PostgreSQL made from it on each partition of audit_log. */
async function indexFamily(name: string): Promise<string[]> {
  const rows = await t.db.query<{ relname: string }>(
    `SELECT c.relname FROM pg_class c
      WHERE c.oid = $1::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)`,
    [name],
  );
  return rows.map((r) => r.relname);
}

const usesOneOf = (plan: string, names: string[]) =>
  names.some((n) => new RegExp(`using ${n}\\b`).test(plan));

describe('the audit log by environment', () => {
  it('?environment=<name> and ?environment=default are index scans over a large log', async () => {
    expect((await a.req('POST', '/api/environments', { name: 'staging' })).statusCode).toBe(201);
    // 40,000 rows: production's secret rows most of them, rows without an environment
    // (access keys) a fifth, default's and staging's secret rows 2.5 % each.
    await t.db.query(
      `INSERT INTO audit_log (actor, action, key, outcome, environment)
       SELECT 'admin:bulk',
              CASE WHEN i % 40 BETWEEN 2 AND 9 THEN 'access_key.create' ELSE 'secret.read' END,
              'K' || (i % 100), 'success',
              CASE WHEN i % 40 = 0 THEN 'staging'
                   WHEN i % 40 BETWEEN 1 AND 9 THEN NULL
                   ELSE 'production' END
         FROM generate_series(1, 40000) i`,
    );
    await t.db.query('ANALYZE audit_log');

    const named = await indexFamily('audit_log_environment_idx');
    const byDefault = await indexFamily('audit_log_default_environment_idx');
    expect(named.length).toBeGreaterThan(1); // the partitioned index and its partitions'
    expect(byDefault.length).toBeGreaterThan(1);

    const stagingPlan = await planOf('staging');
    expect(stagingPlan).not.toMatch(/Seq Scan on audit_log/);
    expect(usesOneOf(stagingPlan, named), stagingPlan).toBe(true);
    const defaultPlan = await planOf('default');
    expect(defaultPlan).not.toMatch(/Seq Scan on audit_log/);
    expect(usesOneOf(defaultPlan, byDefault), defaultPlan).toBe(true);

    // And the rows are the right ones: newest first, the environment's only.
    const page = await a.send({
      method: 'GET',
      url: '/api/audit',
      query: { environment: 'staging', limit: '100' },
    });
    expect(page.statusCode).toBe(200);
    const entries = page.json().entries as { action: string; environment: string; id: string }[];
    expect(entries).toHaveLength(100);
    expect(new Set(entries.map((e) => e.environment))).toEqual(new Set(['staging']));
    const ids = entries.map((e) => BigInt(e.id));
    expect(ids).toEqual([...ids].sort((x, y) => (y > x ? 1 : -1)));
    const def = await a.send({
      method: 'GET',
      url: '/api/audit',
      query: { environment: 'default', limit: '100' },
    });
    const defEntries = def.json().entries as { action: string; environment: string }[];
    expect(defEntries).toHaveLength(100);
    expect(new Set(defEntries.map((e) => [e.environment, e.action].join(' ')))).toEqual(
      new Set(['default secret.read']),
    );
  });
});
