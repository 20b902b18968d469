import pg from 'pg';
import { testDatabaseUrl } from './app.js';

/**
 * Transactions of another application on the same PostgreSQL server, held open while a test
 * runs: what the service's horizons (src/db/xid-horizon.ts) must not wait for.
 */

/** Runs fn while a transaction holding an xid is open in another database (`postgres`). */
export async function whileOpenInAnotherDatabase(fn: () => Promise<void>): Promise<void> {
  const other = new pg.Client({ connectionString: testDatabaseUrl.replace(/\/[^/?]+(\?|$)/, '/postgres$1') });
  await other.connect();
  try {
    await other.query('BEGIN');
    await other.query('SELECT pg_current_xact_id()');
    await fn();
  } finally {
    await other.query('ROLLBACK');
    await other.end();
  }
}

/** Runs fn while a transaction that wrote a row of another schema of the test database is open. */
export async function whileWritingInAnotherSchema(fn: () => Promise<void>): Promise<void> {
  const other = new pg.Client({ connectionString: testDatabaseUrl });
  await other.connect();
  const scratch = `other_app_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  try {
    await other.query(`CREATE SCHEMA ${scratch}`);
    await other.query(`CREATE TABLE ${scratch}.t (n int)`);
    await other.query('BEGIN');
    await other.query(`INSERT INTO ${scratch}.t VALUES (1)`);
    await fn();
  } finally {
    await other.query('ROLLBACK');
    await other.query(`DROP SCHEMA IF EXISTS ${scratch} CASCADE`);
    await other.end();
  }
}

/** A client of the service's own schema (a transaction of "this application"), connected. */
export async function clientOfSchema(schema: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: testDatabaseUrl, options: `-c search_path=${schema}` });
  await c.connect();
  return c;
}
