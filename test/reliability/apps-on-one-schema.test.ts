import pg from 'pg';
import { expect, it } from 'vitest';
import { createTestApp, testDatabaseUrl } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * The test harness itself: a second app built on a first app's data (`schema: t.schema`, as the
 * tests of several instances do) keeps its data until it closes too, whichever of the two
 * closes first. On PGlite each app has its own database (nothing is shared to lose); the
 * PostgreSQL project is where the schema is shared.
 */

async function schemaExists(schema: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: testDatabaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    return rows.length === 1;
  } finally {
    await c.end();
  }
}

it('the schema outlives the app that made it while another app on it is open, and goes with the last', async () => {
  const a = await createTestApp();
  const b = await createTestApp({ env: a.env, ...(a.schema ? { schema: a.schema } : {}) });
  try {
    await a.close();
    // b writes and reads its tables as before: they were not dropped from under it.
    const value = secretValue();
    expect((await api(b).create({ key: 'AFTER_THE_FIRST_CLOSED', value })).statusCode).toBe(201);
    expect((await api(b).reveal('AFTER_THE_FIRST_CLOSED')).json()).toEqual({
      key: 'AFTER_THE_FIRST_CLOSED',
      value,
    });
    if (a.schema) expect(await schemaExists(a.schema)).toBe(true);
    // A second close of the first app changes nothing (it does not count it off twice).
    await a.close();
    if (a.schema) expect(await schemaExists(a.schema)).toBe(true);
  } finally {
    await b.close();
    await a.close();
  }
  if (a.schema) expect(await schemaExists(a.schema)).toBe(false);
});
