import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

/** Every cell of every table in the app's schema, as bytes (bytea as is, anything else as its text). */
async function everyCell(): Promise<Array<{ where: string; bytes: Buffer }>> {
  const tables = await t.db.query<{ tablename: string }>(
    'SELECT tablename FROM pg_tables WHERE schemaname = current_schema()',
  );
  expect(tables.map((x) => x.tablename)).toEqual(
    expect.arrayContaining(['secrets', 'secret_versions', 'crypto_canaries']),
  );
  const out: Array<{ where: string; bytes: Buffer }> = [];
  for (const { tablename } of tables) {
    const rows = await t.db.query<Record<string, unknown>>(`SELECT * FROM ${tablename}`);
    for (const row of rows) {
      for (const [col, v] of Object.entries(row)) {
        if (v === null || v === undefined) continue;
        const bytes = Buffer.isBuffer(v)
          ? v
          : Buffer.from(
              v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v),
            );
        out.push({ where: `${tablename}.${col}`, bytes });
      }
    }
  }
  return out;
}

const windows = (value: string, size = 16) => {
  const b = Buffer.from(value, 'utf8');
  return Array.from({ length: b.length - size + 1 }, (_, i) => b.subarray(i, i + size));
};

async function cryptoRow(key: string) {
  const rows = await t.db.query<Record<string, unknown>>(
    `SELECT v.* FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
     WHERE s.key = $1 AND v.version = s.current_version`,
    [key],
  );
  return rows[0]!;
}

describe('values at rest', () => {
  it('no column of any table holds the value or any 16-byte window of it', async () => {
    const values = [
      secretValue('plain-ascii-long-enough'),
      trackValue('ünïcödé-välüé-🔑-with-more-than-sixteen-bytes'),
      trackValue('A'.repeat(40)), // repetitive: catches an ECB-like or unencrypted store
    ];
    for (const [i, value] of values.entries()) {
      await c.create({ key: `AT_REST_${i}`, value, description: 'metadata only' });
      await c.update(`AT_REST_${i}`, { value: `${value}-v2` });
      trackValue(`${value}-v2`);
    }
    const cells = await everyCell();
    expect(cells.length).toBeGreaterThan(20);
    for (const value of values.flatMap((v) => [v, `${v}-v2`])) {
      for (const w of windows(value)) {
        for (const cell of cells) {
          expect(cell.bytes.includes(w), `${cell.where} contains part of a value`).toBe(false);
        }
      }
    }
  });

  it('stores the documented envelope: 12-byte IVs, 16-byte tags, a 32-byte wrapped DEK, kid and format', async () => {
    const value = secretValue();
    await c.create({ key: 'SHAPE', value });
    const row = await cryptoRow('SHAPE');
    expect(row.format).toBe(1);
    expect(row.kid).toBe('k1');
    expect((row.iv as Buffer).length).toBe(12);
    expect((row.dek_iv as Buffer).length).toBe(12);
    expect((row.tag as Buffer).length).toBe(16);
    expect((row.dek_tag as Buffer).length).toBe(16);
    expect((row.wrapped_dek as Buffer).length).toBe(32);
    expect((row.ciphertext as Buffer).length).toBe(Buffer.byteLength(value));
  });

  it('the same value stored twice gives unrelated ciphertexts (fresh DEK and IV each time)', async () => {
    const value = secretValue();
    await c.create({ key: 'TWIN_A', value });
    await c.create({ key: 'TWIN_B', value });
    const a = await cryptoRow('TWIN_A');
    const b = await cryptoRow('TWIN_B');
    for (const col of ['wrapped_dek', 'dek_iv', 'iv', 'ciphertext', 'tag']) {
      expect((a[col] as Buffer).equals(b[col] as Buffer), col).toBe(false);
    }
  });
});

describe('fail closed on tampered rows', () => {
  const bytea = ['wrapped_dek', 'dek_iv', 'dek_tag', 'iv', 'tag', 'ciphertext'] as const;

  async function expectFailClosed(key: string, value: string) {
    const res = await c.reveal(key);
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      error: 'DECRYPTION_FAILED',
      message: `Secret ${key} could not be decrypted: its stored data failed the integrity check`,
      statusCode: 500,
      nextActions: expect.any(String),
    });
    expect(res.body).not.toContain(value);
    expect(res.body).not.toContain('value"');
  }

  it.each(bytea)('flipping one byte of %s fails closed, and restoring it reads again', async (col) => {
    const value = secretValue(col);
    await c.create({ key: 'TAMPER', value });
    const row = await cryptoRow('TAMPER');
    const original = row[col] as Buffer;
    for (const at of [0, original.length - 1]) {
      const flipped = Buffer.from(original);
      flipped[at] = flipped[at]! ^ 0x01;
      await t.db.query(`UPDATE secret_versions SET ${col} = $1 WHERE secret_id = $2`, [
        flipped,
        row.secret_id,
      ]);
      await expectFailClosed('TAMPER', value);
    }
    // Truncated and extended fields fail closed too.
    for (const bad of [
      original.subarray(0, original.length - 1),
      Buffer.concat([original, Buffer.from([0])]),
    ]) {
      await t.db.query(`UPDATE secret_versions SET ${col} = $1 WHERE secret_id = $2`, [bad, row.secret_id]);
      await expectFailClosed('TAMPER', value);
    }
    await t.db.query(`UPDATE secret_versions SET ${col} = $1 WHERE secret_id = $2`, [
      original,
      row.secret_id,
    ]);
    expect((await c.reveal('TAMPER')).json().value).toBe(value);
  });

  it.each([
    ['kid changed to another name', 'kid', 'j1'],
    ['kid emptied', 'kid', ''],
    ['format changed', 'format', 2],
    ['format zero', 'format', 0],
  ])('%s fails closed', async (_name, col, bad) => {
    const value = secretValue();
    await c.create({ key: 'TAMPER', value });
    await t.db.query(`UPDATE secret_versions SET ${col} = $1`, [bad]);
    await expectFailClosed('TAMPER', value);
  });

  it("copying one secret's crypto fields onto another row fails closed; the source still reads", async () => {
    const a = secretValue('source');
    const b = secretValue('target');
    await c.create({ key: 'SOURCE', value: a });
    await c.create({ key: 'TARGET', value: b });
    await t.db.query(
      `UPDATE secret_versions dst SET format = src.format, kid = src.kid, wrapped_dek = src.wrapped_dek,
         dek_iv = src.dek_iv, dek_tag = src.dek_tag, iv = src.iv, tag = src.tag, ciphertext = src.ciphertext
       FROM secret_versions src
       WHERE src.secret_id = (SELECT id FROM secrets WHERE key = 'SOURCE')
         AND dst.secret_id = (SELECT id FROM secrets WHERE key = 'TARGET')`,
    );
    await expectFailClosed('TARGET', a);
    expect((await c.reveal('TARGET')).body).not.toContain(b);
    expect((await c.reveal('SOURCE')).json().value).toBe(a);
  });

  it('renaming a row (its key bound in the AAD) fails closed', async () => {
    const value = secretValue();
    await c.create({ key: 'ORIGINAL', value });
    await t.db.query(`UPDATE secrets SET key = 'RENAMED' WHERE key = 'ORIGINAL'`);
    await expectFailClosed('RENAMED', value);
  });

  it('rolling back to an old version row (version bound in the AAD) fails closed', async () => {
    const v1 = secretValue('v1');
    await c.create({ key: 'ROLLBACK', value: v1 });
    await c.update('ROLLBACK', { value: secretValue('v2') });
    await t.db.query(
      `UPDATE secret_versions dst SET wrapped_dek = src.wrapped_dek, dek_iv = src.dek_iv, dek_tag = src.dek_tag,
         iv = src.iv, tag = src.tag, ciphertext = src.ciphertext
       FROM secret_versions src WHERE src.secret_id = dst.secret_id AND src.version = 1 AND dst.version = 2`,
    );
    await expectFailClosed('ROLLBACK', v1);
  });

  it('a tampered row does not affect other secrets', async () => {
    const good = secretValue();
    await c.create({ key: 'GOOD', value: good });
    await c.create({ key: 'BAD', value: secretValue() });
    await t.db.query(
      `UPDATE secret_versions SET tag = $1 WHERE secret_id = (SELECT id FROM secrets WHERE key = 'BAD')`,
      [randomBytes(16)],
    );
    expect((await c.reveal('BAD')).statusCode).toBe(500);
    expect((await c.reveal('GOOD')).json().value).toBe(good);
    expect((await c.list()).statusCode).toBe(200);
  });
});
