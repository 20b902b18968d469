import { expect, it } from 'vitest';
import { openValue } from '../../src/crypto/envelope.js';
import { type CryptoColumns, toSealed } from '../../src/db/sealed-columns.js';
import { toAppError } from '../../src/http/error-handler.js';
import { useTestApp } from '../helpers/app.js';
import { api, counts } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ env: { MAX_VERSIONS: '1000' }, resetEachTest: true });
const c = api(t);

const tally = (codes: number[]) =>
  codes.reduce<Record<number, number>>((m, s) => {
    m[s] = (m[s] ?? 0) + 1;
    return m;
  }, {});

/** Decrypts every stored version of a key straight from the table (not through the API). */
async function everyVersion(key: string): Promise<Array<{ version: number; value: string }>> {
  const rows = await t.db.query<CryptoColumns & { id: string; key: string; version: number }>(
    `SELECT s.id, s.key, v.version, v.format, v.kid, v.wrapped_dek, v.dek_iv, v.dek_tag, v.iv, v.tag, v.ciphertext
     FROM secrets s JOIN secret_versions v ON v.secret_id = s.id WHERE s.key = $1 ORDER BY v.version`,
    [key],
  );
  return rows.map((r) => ({
    version: r.version,
    value: openValue(t.keyring, { secretId: r.id, key: r.key, version: r.version }, toSealed(r)),
  }));
}

it('50 concurrent creates of one key: exactly one 201 and 49 409s, one row', async () => {
  const values = Array.from({ length: 50 }, () => secretValue('race'));
  const res = await Promise.all(values.map((value) => c.create({ key: 'RACE', value })));
  expect(tally(res.map((r) => r.statusCode))).toEqual({ 201: 1, 409: 49 });
  for (const r of res.filter((x) => x.statusCode === 409)) {
    expect(r.json()).toMatchObject({ error: 'INVALID_INPUT', message: 'Secret already exists: RACE' });
  }
  const winner = values[res.findIndex((r) => r.statusCode === 201)];
  expect((await c.reveal('RACE')).json().value).toBe(winner);
  expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
});

it('50 concurrent updates of one key all succeed; every version decrypts; the last is one of them', async () => {
  await c.create({ key: 'HOT', value: secretValue('initial') });
  const values = Array.from({ length: 50 }, (_, i) => secretValue(`u${i}`));
  const res = await Promise.all(values.map((value) => c.update('HOT', { value })));
  expect(tally(res.map((r) => r.statusCode))).toEqual({ 200: 50 });
  const versions = await everyVersion('HOT');
  expect(versions.map((v) => v.version)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
  expect(new Set(versions.slice(1).map((v) => v.value))).toEqual(new Set(values));
  const final = (await c.reveal('HOT')).json().value;
  expect(final).toBe(versions[50]!.value);
  expect(values).toContain(final);
  // Updates that lost a race wrote nothing and were tried again: one success row per update.
  const [rows] = await t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM audit_log WHERE key = 'HOT' AND action = 'secret.update'",
  );
  expect(rows!.n).toBe(50);
});

it('concurrent updates mixed with reads never return a value that was not written', async () => {
  const initial = secretValue('initial');
  await c.create({ key: 'MIXED', value: initial });
  const values = Array.from({ length: 20 }, (_, i) => secretValue(`m${i}`));
  const ops = values.flatMap((value) => [c.update('MIXED', { value }), c.reveal('MIXED')]);
  const res = await Promise.all(ops);
  const allowed = new Set([initial, ...values]);
  for (const r of res) {
    expect(r.statusCode).toBe(200);
    if (r.json().value !== undefined) expect(allowed.has(r.json().value)).toBe(true);
  }
  // Which answer is which is known (update, read, update, ...): every read carries a value
  // (the check above skips none of them) and every update reports success.
  for (const [i, r] of res.entries()) {
    if (i % 2 === 1) {
      expect(Object.keys(r.json())).toEqual(['key', 'value']);
      expect(allowed.has(r.json().value), 'a read returned a value nobody wrote').toBe(true);
    } else expect(r.json().success).toBe(true);
  }
});

it('concurrent create, delete and revive of one key leave one consistent, readable row', async () => {
  const created = secretValue('first');
  const first = await c.create({ key: 'CHURN', value: created });
  expect(first.statusCode).toBe(201);
  const originalId = first.json().id;
  expect(originalId).toMatch(/^[0-9a-f-]{36}$/);
  const values = Array.from({ length: 20 }, (_, i) => secretValue(`churn${i}`));
  const ops = values.flatMap((value) => [c.remove('CHURN'), c.create({ key: 'CHURN', value })]);
  const res = await Promise.all(ops);
  for (const [i, r] of res.entries()) {
    if (i % 2 === 0) expect(r.statusCode, 'delete').toBe(200);
    else expect([201, 409], 'create').toContain(r.statusCode);
  }
  const revived = res.filter((r, i) => i % 2 === 1 && r.statusCode === 201);
  // Every successful revive kept the original id.
  const ids = new Set(revived.map((r) => r.json().id));
  expect(ids.size).toBeLessThanOrEqual(1);
  for (const r of revived) expect(r.json().id, 'a revive changed the id').toBe(originalId);
  const rows = await t.db.query<{ id: string; is_active: boolean; current_version: number }>(
    `SELECT id, is_active, current_version FROM secrets WHERE key = 'CHURN'`,
  );
  expect(rows).toHaveLength(1);
  expect(rows[0]!.id).toBe(originalId);
  expect(rows[0]!.current_version).toBe(1 + revived.length);
  const versions = await everyVersion('CHURN');
  expect(versions).toHaveLength(1 + revived.length);
  const read = await c.reveal('CHURN');
  if (rows[0]!.is_active) expect(values).toContain(read.json().value);
  else expect(read.json().message).toBe('Secret not found: CHURN is inactive');
});

it('concurrent creates of 50 different keys all succeed and list without gaps', async () => {
  const keys = Array.from({ length: 50 }, (_, i) => `PAR_${i}`);
  const res = await Promise.all(keys.map((key) => c.create({ key, value: secretValue() })));
  expect(tally(res.map((r) => r.statusCode))).toEqual({ 201: 50 });
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { secrets: Array<{ key: string }>; nextCursor: string | null } = (
      await c.list(cursor ? { limit: 7, cursor } : { limit: 7 })
    ).json();
    const body = page;
    seen.push(...body.secrets.map((s: { key: string }) => s.key));
    cursor = body.nextCursor;
  } while (cursor);
  expect([...seen].sort()).toEqual([...keys].sort());
});

it.each([
  '40P01',
  '40001',
])('a transaction the database rolls back as the loser of a deadlock or serialization conflict (%s) answers 503 with Retry-After, not 500', async (sqlstate) => {
  // A real driver error of that SQLSTATE, as the database reports it.
  const err = await t.db
    .query(`DO $$ BEGIN RAISE EXCEPTION 'lost a conflict' USING ERRCODE = '${sqlstate}'; END $$`)
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect((err as { code?: string }).code).toBe(sqlstate);
  const answer = toAppError(err);
  expect(answer.statusCode).toBe(503);
  expect(answer.headers).toEqual({ 'retry-after': '1' });
  expect(answer.message).toContain('nothing was changed');
  // Any other driver error stays a 500 without internals.
  const other = await t.db.query(`SELECT 1/0`).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(toAppError(other).statusCode).toBe(500);
});
