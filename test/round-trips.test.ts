import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { backend, createTestApp, type TestApp } from './helpers/app.js';
import { secretValue } from './helpers/secrets.js';

// The issue-5 budget: a value read is one database statement (one round trip, its audit row
// included). Writes are one transaction: the change plus its audit row (issue 4), which
// makes a create two statements and an update three. Counted at the driver (the calls
// go through to the real database), so any extra query added on these paths fails here.
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());
afterEach(() => {
  vi.restoreAllMocks();
});

/** The SQL each driver was asked to run while fn ran. */
async function statementsDuring(fn: () => Promise<unknown>) {
  const texts = (calls: unknown[][]) => calls.map((c) => (typeof c[0] === 'string' ? c[0] : String(c[0])));
  if (backend === 'postgres') {
    const spy = vi.spyOn(pg.Client.prototype, 'query');
    await fn();
    return { statements: texts(spy.mock.calls), transactions: 0 };
  }
  const query = vi.spyOn(PGlite.prototype, 'query');
  const transaction = vi.spyOn(PGlite.prototype, 'transaction');
  await fn();
  return { statements: texts(query.mock.calls), transactions: transaction.mock.calls.length };
}

const headers = () => t.auth();

it('reads a value with one statement', async () => {
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key: 'RT_READ', value: secretValue() },
  });
  const h = headers();
  const { statements, transactions } = await statementsDuring(async () => {
    const r = await t.app.inject({ method: 'GET', url: '/api/secrets/RT_READ', headers: h });
    expect(r.statusCode).toBe(200);
  });
  expect(statements).toHaveLength(1);
  expect(transactions).toBe(0);
});

it('creates a secret in one transaction: the insert and its audit row', async () => {
  const h = headers();
  const { statements, transactions } = await statementsDuring(async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'RT_CREATE', value: secretValue() },
    });
    expect(r.statusCode).toBe(201);
  });
  if (backend === 'postgres') {
    expect(statements.map((s) => s.trim().split(/\s+/)[0]?.toUpperCase())).toEqual([
      'BEGIN',
      'WITH',
      'INSERT',
      'COMMIT',
    ]);
  } else {
    expect(transactions).toBe(1);
    expect(statements).toHaveLength(0);
  }
});

it('updates a value in one transaction: the locking read, the versioned update, its audit row', async () => {
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key: 'RT_UPDATE', value: secretValue() },
  });
  const h = headers();
  const { statements, transactions } = await statementsDuring(async () => {
    const r = await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/RT_UPDATE',
      headers: h,
      payload: { value: secretValue() },
    });
    expect(r.statusCode).toBe(200);
  });
  if (backend === 'postgres') {
    // BEGIN, the locking SELECT, the versioned UPDATE, the audit row, COMMIT: all on one connection.
    expect(statements.map((s) => s.trim().split(/\s+/)[0]?.toUpperCase())).toEqual([
      'BEGIN',
      'SELECT',
      'WITH',
      'INSERT',
      'COMMIT',
    ]);
  } else {
    // PGlite runs the transaction's statements through private methods: one transaction, nothing outside it.
    expect(transactions).toBe(1);
    expect(statements).toHaveLength(0);
  }
});
