import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';
import { scanLogs } from './hygiene.js';
import { LONG, report } from './mode.js';

/**
 * Tampering with stored ciphertext, directly in the tables with plain SQL: every read of
 * a tampered value must fail closed with 500 DECRYPTION_FAILED and no value, and read
 * back intact once the row is restored (so the failure is the tampering, nothing else).
 * Short mode flips the first, middle and last byte of each field; long mode every byte.
 */

const FIELDS = ['wrapped_dek', 'dek_iv', 'dek_tag', 'iv', 'tag', 'ciphertext'] as const;
type Field = (typeof FIELDS)[number];

let t: TestApp;
const values = { A1: secretValue('a1'), A2: secretValue('a2'), B: secretValue('b') };
let idA = '';
let idB = '';
const figures = { tamperings: 0, failedClosed: 0, restoredReads: 0 };

async function read(key: string) {
  const res = await t.app.inject({ url: `/api/secrets/${key}`, headers: t.auth() });
  return { status: res.statusCode, body: res.body };
}

/** Runs a tampering, expects the read of `key` to fail closed, restores, expects `value` again. */
async function expectFailsClosed(
  key: string,
  value: string,
  tamper: () => Promise<unknown>,
  restore: () => Promise<unknown>,
) {
  await tamper();
  figures.tamperings++;
  const bad = await read(key);
  expect(bad.status, bad.body).toBe(500);
  const body = JSON.parse(bad.body);
  expect(body.error).toBe('DECRYPTION_FAILED');
  expect(body).not.toHaveProperty('value');
  for (const v of Object.values(values)) expect(bad.body).not.toContain(v);
  figures.failedClosed++;
  await restore();
  const good = await read(key);
  expect(good.status).toBe(200);
  expect(JSON.parse(good.body).value).toBe(value);
  figures.restoredReads++;
}

const q = <R = Record<string, unknown>>(sql: string, params: unknown[] = []) => t.db.query<R>(sql, params);
const versionRow = async (id: string, version: number) =>
  (
    await q<Record<Field | 'kid' | 'format', Buffer | string | number>>(
      'SELECT * FROM secret_versions WHERE secret_id = $1 AND version = $2',
      [id, version],
    )
  )[0]!;
const setField = (id: string, version: number, field: string, v: unknown) =>
  q(`UPDATE secret_versions SET ${field} = $3 WHERE secret_id = $1 AND version = $2`, [id, version, v]);

beforeAll(async () => {
  // Two kids: k2 active, k1 also in the ring, so a relabelled kid names a real key.
  const k1 = randomBytes(32).toString('base64');
  const k2 = randomBytes(32).toString('base64');
  t = await createTestApp({ env: { ENCRYPTION_KEY: '', ENCRYPTION_KEYS: `k1:${k1},k2:${k2}` } });
  for (const [key, value] of [
    ['A', values.A1],
    ['B', values.B],
  ] as const) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key, value },
    });
    expect(res.statusCode).toBe(201);
  }
  const put = await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/A',
    headers: t.auth(),
    payload: { value: values.A2 },
  });
  expect(put.statusCode).toBe(200);
  const ids = await q<{ key: string; id: string }>('SELECT key, id FROM secrets');
  idA = ids.find((r) => r.key === 'A')!.id;
  idB = ids.find((r) => r.key === 'B')!.id;
});
afterAll(async () => {
  report('crypto-integrity', backend, figures);
  await t?.close();
});

const flipPositions = (orig: Buffer) =>
  LONG ? [...orig.keys()] : [...new Set([0, Math.floor(orig.length / 2), orig.length - 1])];

describe('every stored crypto field, byte flips', () => {
  it.each(FIELDS)('%s: flipping a byte fails closed', async (field) => {
    const orig = (await versionRow(idA, 2))[field] as Buffer;
    for (const pos of flipPositions(orig)) {
      const flipped = Buffer.from(orig);
      flipped[pos] = (flipped[pos] ?? 0) ^ 0x01;
      await expectFailsClosed(
        'A',
        values.A2,
        () => setField(idA, 2, field, flipped),
        () => setField(idA, 2, field, orig),
      );
    }
  });
});

describe('every stored crypto field, truncated, emptied, extended', () => {
  it.each(FIELDS)('%s', async (field) => {
    const orig = (await versionRow(idA, 2))[field] as Buffer;
    for (const altered of [
      orig.subarray(0, orig.length - 1),
      Buffer.alloc(0),
      Buffer.concat([orig, Buffer.from([0])]),
    ]) {
      await expectFailsClosed(
        'A',
        values.A2,
        () => setField(idA, 2, field, altered),
        () => setField(idA, 2, field, orig),
      );
    }
  });
});

describe('relabelled metadata', () => {
  it('kid pointing at the other key in the ring, or at an unknown kid', async () => {
    const orig = (await versionRow(idA, 2)).kid as string;
    for (const kid of [orig === 'k1' ? 'k2' : 'k1', 'k9', '']) {
      await expectFailsClosed(
        'A',
        values.A2,
        () => setField(idA, 2, 'kid', kid),
        () => setField(idA, 2, 'kid', orig),
      );
    }
  });

  it('an unknown format version', async () => {
    await expectFailsClosed(
      'A',
      values.A2,
      () => setField(idA, 2, 'format', 2),
      () => setField(idA, 2, 'format', 1),
    );
  });

  it('a secret renamed in place (its sealed value stays bound to the old key)', async () => {
    await q("UPDATE secrets SET key = 'RENAMED' WHERE id = $1", [idA]);
    figures.tamperings++;
    try {
      const bad = await read('RENAMED');
      expect(bad.status).toBe(500);
      expect(JSON.parse(bad.body).error).toBe('DECRYPTION_FAILED');
      expect(bad.body).not.toContain(values.A2);
      figures.failedClosed++;
    } finally {
      await q("UPDATE secrets SET key = 'A' WHERE id = $1", [idA]);
    }
    expect(JSON.parse((await read('A')).body).value).toBe(values.A2);
  });
});

const CRYPTO = ['format', 'kid', ...FIELDS] as const;
const copyRow = (fromId: string, fromV: number, toId: string, toV: number, cols: readonly string[]) =>
  q(
    `UPDATE secret_versions d SET ${cols.map((c) => `${c} = s.${c}`).join(', ')}
     FROM secret_versions s WHERE s.secret_id = $1 AND s.version = $2 AND d.secret_id = $3 AND d.version = $4`,
    [fromId, fromV, toId, toV],
  );
async function snapshotRow(id: string, v: number) {
  const row = await versionRow(id, v);
  return () =>
    q(
      `UPDATE secret_versions SET ${CRYPTO.map((c, i) => `${c} = $${i + 3}`).join(', ')} WHERE secret_id = $1 AND version = $2`,
      [id, v, ...CRYPTO.map((c) => row[c])],
    );
}

describe('rows swapped between secrets and versions', () => {
  it("another secret's whole sealed value copied in", async () => {
    const restore = await snapshotRow(idA, 2);
    await expectFailsClosed('A', values.A2, () => copyRow(idB, 1, idA, 2, CRYPTO), restore);
  });

  it.each(FIELDS)('only %s copied from another secret', async (field) => {
    const restore = await snapshotRow(idB, 1);
    await expectFailsClosed('B', values.B, () => copyRow(idA, 2, idB, 1, [field]), restore);
  });

  it("an old version's sealed value replayed as the current one", async () => {
    const restore = await snapshotRow(idA, 2);
    await expectFailsClosed('A', values.A2, () => copyRow(idA, 1, idA, 2, CRYPTO), restore);
  });

  it('the wrapped data key (with its IV and tag) taken from the old version', async () => {
    const restore = await snapshotRow(idA, 2);
    await expectFailsClosed(
      'A',
      values.A2,
      () => copyRow(idA, 1, idA, 2, ['wrapped_dek', 'dek_iv', 'dek_tag']),
      restore,
    );
  });

  it('no log line of the run holds a value', async () => {
    scanLogs();
    expect(figures.failedClosed).toBe(figures.tamperings);
    // Every case of the catalogue ran and failed closed, counted from the catalogue itself
    // (the field lengths as stored), so a case that silently did nothing shows here. Counted:
    // flips, 3 resizings per field, 3 kids, 1 format, 1 rename, 1 whole copy, 1 copy per
    // field, 1 replayed version, 1 replayed data key.
    const row = await versionRow(idA, 2);
    const flips = FIELDS.reduce((n, f) => n + flipPositions(row[f] as Buffer).length, 0);
    const planned = flips + FIELDS.length * 3 + 3 + 1 + 1 + 1 + FIELDS.length + 1 + 1;
    expect(figures.tamperings).toBe(planned);
    expect(figures.restoredReads).toBe(planned - 1); // the rename is read back on its own
  });
});
