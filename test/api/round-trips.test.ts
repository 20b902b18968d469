import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, expect, it, vi } from 'vitest';
import { backend, useTestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';

// The issue-10 budget: a value read is one plain SELECT (a named prepared statement, no
// transaction) plus its share of a group-committed audit insert; a write is one transaction
// of at most two statements, its audit row included. Counted at the driver (the calls go
// through to the real database), so any extra query added on these paths fails here.
// A wide batch window, so that concurrent reads certainly share a batch.
// No background sealer nor webhook delivery: their statements would be counted with the request's.
const t = useTestApp({
  env: { AUDIT_BATCH_WINDOW_MS: '200', AUDIT_SEAL_INTERVAL_MS: '0', WEBHOOK_POLL_MS: '0' },
});
afterEach(() => {
  vi.restoreAllMocks();
});

interface Sent {
  text: string;
  /** The prepared statement's name, when it was sent as one. */
  name: string | undefined;
  values: unknown[];
}

/** pg takes (text, values) or ({ name, text, values }); PGlite takes (text, values). */
function sent(call: unknown[]): Sent {
  const [first, second] = call;
  if (typeof first === 'string') return { text: first, name: undefined, values: (second as unknown[]) ?? [] };
  const q = first as { text: string; name?: string; values?: unknown[] };
  return { text: q.text, name: q.name, values: q.values ?? [] };
}

/** The statements each driver was asked to run while fn ran. */
async function statementsDuring(fn: () => Promise<unknown>) {
  if (backend === 'postgres') {
    const spy = vi.spyOn(pg.Client.prototype, 'query');
    await fn();
    const all = spy.mock.calls.map((c) => sent(c as unknown[]));
    return { all, statements: all.map((s) => s.text), transactions: 0, inTx: [] as string[] };
  }
  // A PGlite transaction's statements go through the Transaction object its callback gets,
  // not PGlite.prototype.query: the spy hands the callback a view of it that records them,
  // so the statement budget is checked on PGlite too, not only the transaction count.
  const query = vi.spyOn(PGlite.prototype, 'query');
  const original = PGlite.prototype.transaction;
  const inTx: string[] = [];
  type Tx = Parameters<Parameters<PGlite['transaction']>[0]>[0];
  const recording = (tx: Tx): Tx =>
    new Proxy(tx, {
      get(target, prop) {
        const v = Reflect.get(target, prop) as unknown;
        if (typeof v !== 'function') return v;
        if (prop === 'query' || prop === 'exec')
          return (...args: unknown[]) => {
            inTx.push(sent(args).text);
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        return (v as (...a: unknown[]) => unknown).bind(target);
      },
    });
  const transaction = vi.spyOn(PGlite.prototype, 'transaction').mockImplementation(function (
    this: PGlite,
    cb,
  ) {
    return original.call(this, (tx) => cb(recording(tx)));
  });
  await fn();
  const all = query.mock.calls.map((c) => sent(c as unknown[]));
  return { all, statements: all.map((s) => s.text), transactions: transaction.mock.calls.length, inTx };
}

const firstWord = (s: string) => s.trim().split(/\s+/)[0]?.toUpperCase();
const isBatch = (s: Sent) => /INSERT INTO audit_log/.test(s.text) && /unnest/.test(s.text);
const isReveal = (s: Sent) => firstWord(s.text) === 'SELECT' && /JOIN secrets s/.test(s.text);

const headers = () => t.auth();

it('reads a value with one plain prepared SELECT and one batched audit insert', async () => {
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key: 'RT_READ', value: secretValue() },
  });
  const h = headers();
  const { all, transactions } = await statementsDuring(async () => {
    const r = await t.app.inject({ method: 'GET', url: '/api/secrets/RT_READ', headers: h });
    expect(r.statusCode).toBe(200);
  });
  expect(all).toHaveLength(2);
  const [read, batch] = all as [Sent, Sent];
  expect(isReveal(read)).toBe(true);
  // No lock and no write in the read: a replica could answer it.
  expect(read.text).not.toMatch(/FOR UPDATE|INSERT|UPDATE|DELETE/i);
  expect(isBatch(batch)).toBe(true);
  // The batch carries this read's row and its lastUsed stamp.
  expect((batch.values[0] as unknown[]).length).toBe(1);
  expect((batch.values[8] as unknown[]).length).toBe(1);
  expect(transactions).toBe(0);
  if (backend === 'postgres') {
    expect(read.name).toBe('secret_reveal');
    expect(batch.name).toBe('audit_batch');
  }
  // Read again within the minute: its stamp is fresh, so its batch is the plain insert.
  vi.restoreAllMocks();
  const again = await statementsDuring(async () => {
    const r = await t.app.inject({ method: 'GET', url: '/api/secrets/RT_READ', headers: h });
    expect(r.statusCode).toBe(200);
  });
  expect(again.all).toHaveLength(2);
  const plain = again.all[1] as Sent;
  expect(isBatch(plain)).toBe(true);
  expect(plain.text).not.toMatch(/UPDATE secrets/);
  expect(plain.values).toHaveLength(8);
  expect((plain.values[0] as unknown[]).length).toBe(1);
  if (backend === 'postgres') expect(plain.name).toBe('audit_rows');
});

it('concurrent reads share their SELECTs and batched inserts, every row written once', async () => {
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key: 'RT_MANY', value: secretValue() },
  });
  const h = headers();
  const n = 20;
  const { all } = await statementsDuring(async () => {
    const rs = await Promise.all(
      Array.from({ length: n }, () =>
        t.app.inject({ method: 'GET', url: '/api/secrets/RT_MANY', headers: h }),
      ),
    );
    for (const r of rs) expect(r.statusCode).toBe(200);
  });
  // Reads that arrive together are one SELECT (src/secrets/reveal-batch.ts); one key asked
  // twenty times is asked once.
  const reveals = all.filter(isReveal);
  expect(reveals.length).toBeGreaterThanOrEqual(1);
  expect(reveals.length).toBeLessThan(n);
  for (const r of reveals) expect(r.values[0]).toEqual(['RT_MANY']);
  const batches = all.filter(isBatch);
  expect(all).toHaveLength(reveals.length + batches.length);
  expect(batches.reduce((sum, b) => sum + (b.values[0] as unknown[]).length, 0)).toBe(n);
  expect(batches.length).toBeLessThan(n);
});

it('creates a secret in one transaction of two statements: the insert, then its audit row and event', async () => {
  const h = headers();
  const { statements, transactions, inTx } = await statementsDuring(async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'RT_CREATE', value: secretValue() },
    });
    expect(r.statusCode).toBe(201);
  });
  // The second statement writes the audit row and the change event (the outbox) together.
  let second: string;
  if (backend === 'postgres') {
    expect(statements.map(firstWord)).toEqual(['BEGIN', 'WITH', 'WITH', 'COMMIT']);
    second = statements[2]!;
  } else {
    expect(transactions).toBe(1);
    expect(statements).toHaveLength(0);
    expect(inTx.map(firstWord)).toEqual(['WITH', 'WITH']);
    second = inTx[1]!;
  }
  expect(second).toMatch(/INSERT INTO audit_log/);
  expect(second).toMatch(/INSERT INTO change_events/);
});

it('updates a value in two statements without a transaction: a plain read, the guarded update with its audit row', async () => {
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key: 'RT_UPDATE', value: secretValue() },
  });
  const h = headers();
  const put = () =>
    t.app.inject({
      method: 'PUT',
      url: '/api/secrets/RT_UPDATE',
      headers: h,
      payload: { value: secretValue() },
    });
  const { all, statements, transactions } = await statementsDuring(async () => {
    expect((await put()).statusCode).toBe(200);
  });
  // No BEGIN, no lock, no COMMIT: the SELECT, then one autocommit statement that updates the
  // row only if its revision is still the one read, with the new version and the audit row
  // written from the UPDATE's RETURNING (src/audit/trail.ts, changeGuarded).
  expect(statements.map(firstWord)).toEqual(['SELECT', 'WITH']);
  expect(statements[0]).not.toMatch(/FOR UPDATE/i);
  expect(statements[1]).toMatch(/INSERT INTO audit_log/);
  expect(statements[1]).toMatch(/WHERE id = \$1 AND revision = \$2::bigint/);
  expect(transactions).toBe(0);
  if (backend === 'postgres') {
    // Both are named prepared statements (parsed and planned once per connection), and the
    // same shape of update keeps its name: a second update sends the same two names.
    const names = all.map((s) => s.name);
    expect(names[0]).toBe('secret_by_key');
    expect(names[1]).toMatch(/^secret_update_[0-9a-f]{16}$/);
    vi.restoreAllMocks();
    const again = await statementsDuring(async () => {
      expect((await put()).statusCode).toBe(200);
    });
    expect(again.all.map((s) => s.name)).toEqual(names);
  }
});

it.each([
  ['soft delete', 'DELETE', '', undefined],
  ['restore', 'POST', '/restore', undefined],
  ['purge', 'DELETE', '?purge=true', undefined],
  ['rollback', 'POST', '/rollback', { version: 1 }],
] as const)('%s is one transaction of at most two statements', async (name, method, suffix, payload) => {
  const key = `RT_${name.replace(' ', '_').toUpperCase()}`;
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: headers(),
    payload: { key, value: secretValue() },
  });
  if (name === 'rollback')
    await t.app.inject({
      method: 'PUT',
      url: `/api/secrets/${key}`,
      headers: headers(),
      payload: { value: secretValue() },
    });
  if (name === 'restore' || name === 'purge')
    await t.app.inject({ method: 'DELETE', url: `/api/secrets/${key}`, headers: headers() });
  const h = headers();
  const { statements, transactions, inTx } = await statementsDuring(async () => {
    const r = await t.app.inject({
      method,
      url: `/api/secrets/${key}${suffix}`,
      headers: h,
      ...(payload ? { payload } : {}),
    });
    expect(r.statusCode).toBe(200);
  });
  if (backend === 'postgres') {
    expect(statements[0]).toBe('BEGIN');
    expect(statements[statements.length - 1]).toBe('COMMIT');
    expect(statements.length - 2).toBeLessThanOrEqual(2);
    expect(statements.filter((s) => /INSERT INTO audit_log/.test(s))).toHaveLength(1);
  } else {
    expect(transactions).toBe(1);
    expect(statements).toHaveLength(0);
    expect(inTx.length).toBeGreaterThanOrEqual(1);
    expect(inTx.length).toBeLessThanOrEqual(2);
    expect(inTx.filter((s) => /INSERT INTO audit_log/.test(s))).toHaveLength(1);
  }
});
