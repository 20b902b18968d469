import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

const keysOf = (body: { secrets: Array<{ key: string }> }) => body.secrets.map((s) => s.key);

describe('GET /api/secrets', () => {
  it('an empty store lists nothing', async () => {
    const res = await c.list();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ secrets: [], nextCursor: null });
  });

  it('lists metadata, newest first, inactive included, never values', async () => {
    const values = [secretValue(), secretValue(), secretValue()];
    await c.create({ key: 'FIRST', value: values[0], description: 'one' });
    await c.create({ key: 'SECOND', value: values[1] });
    await c.create({ key: 'THIRD', value: values[2] });
    await c.remove('SECOND');
    const res = await c.list();
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(keysOf(body)).toEqual(['THIRD', 'SECOND', 'FIRST']);
    expect(body.nextCursor).toBeNull();
    for (const v of values) expect(res.body).not.toContain(v);
    for (const s of body.secrets) {
      expect(Object.keys(s).sort()).toEqual(
        [
          'createdAt',
          'description',
          'expiresAt',
          'id',
          'isActive',
          'isReserved',
          'isWriteOnly',
          'key',
          'lastUsedAt',
          'lastUsedBy',
          'updatedAt',
          'version',
        ].sort(),
      );
      expect(s).not.toHaveProperty('value');
    }
    expect(body.secrets[1]).toMatchObject({ key: 'SECOND', isActive: false });
    expect(body.secrets[2]).toMatchObject({ key: 'FIRST', description: 'one' });
  });

  it('filters by prefix and by active', async () => {
    for (const key of ['STRIPE_LIVE', 'STRIPE_TEST', 'OPENAI', 'STRIPEX'])
      await c.create({ key, value: secretValue() });
    await c.remove('STRIPE_TEST');
    expect(keysOf((await c.list({ prefix: 'STRIPE_' })).json())).toEqual(['STRIPE_TEST', 'STRIPE_LIVE']);
    expect(keysOf((await c.list({ prefix: 'STRIPE' })).json())).toEqual([
      'STRIPEX',
      'STRIPE_TEST',
      'STRIPE_LIVE',
    ]);
    expect(keysOf((await c.list({ active: true })).json())).toEqual(['STRIPEX', 'OPENAI', 'STRIPE_LIVE']);
    expect(keysOf((await c.list({ active: false })).json())).toEqual(['STRIPE_TEST']);
    expect(keysOf((await c.list({ prefix: 'STRIPE_', active: true })).json())).toEqual(['STRIPE_LIVE']);
    expect(keysOf((await c.list({ prefix: 'NOPE' })).json())).toEqual([]);
    // "_" is a literal, not a LIKE wildcard.
    expect(keysOf((await c.list({ prefix: 'STRIPE_L' })).json())).toEqual(['STRIPE_LIVE']);
  });

  it('walks every page with limit/cursor: no duplicates, no gaps, newest first', async () => {
    const keys = Array.from({ length: 23 }, (_, i) => `PAGE_${String(i).padStart(2, '0')}`);
    for (const key of keys) await c.create({ key, value: secretValue() });
    await c.remove('PAGE_05');
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await c.list({ limit: 5, ...(cursor ? { cursor } : {}) });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.secrets.length).toBeLessThanOrEqual(5);
      seen.push(...keysOf(body));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(5);
    expect(seen).toEqual([...keys].reverse());
  });

  it('an exact multiple of the limit ends with nextCursor null, not an empty page', async () => {
    for (const key of ['A1', 'A2', 'A3', 'A4']) await c.create({ key, value: secretValue() });
    const p1 = (await c.list({ limit: 2 })).json();
    expect(p1.nextCursor).toEqual(expect.any(String));
    const p2 = (await c.list({ limit: 2, cursor: p1.nextCursor })).json();
    expect(keysOf(p2)).toEqual(['A2', 'A1']);
    expect(p2.nextCursor).toBeNull();
  });

  it('pagination is stable while secrets are created between pages', async () => {
    for (const key of ['K1', 'K2', 'K3', 'K4']) await c.create({ key, value: secretValue() });
    const p1 = (await c.list({ limit: 2 })).json();
    await c.create({ key: 'K5', value: secretValue() });
    const p2 = (await c.list({ limit: 2, cursor: p1.nextCursor })).json();
    expect([...keysOf(p1), ...keysOf(p2)]).toEqual(['K4', 'K3', 'K2', 'K1']);
  });

  it('pages combine with filters', async () => {
    for (const key of ['X_1', 'Y_1', 'X_2', 'Y_2', 'X_3']) await c.create({ key, value: secretValue() });
    const p1 = (await c.list({ prefix: 'X_', limit: 2 })).json();
    const p2 = (await c.list({ prefix: 'X_', limit: 2, cursor: p1.nextCursor })).json();
    expect([...keysOf(p1), ...keysOf(p2)]).toEqual(['X_3', 'X_2', 'X_1']);
    expect(p2.nextCursor).toBeNull();
  });

  it.each([
    ['garbage', 'not-a-cursor'],
    ['base64 of garbage', Buffer.from('hello').toString('base64url')],
    ['wrong version', Buffer.from('v2:5').toString('base64url')],
    ['zero', Buffer.from('v1:0').toString('base64url')],
    ['negative', Buffer.from('v1:-1').toString('base64url')],
    ['overflowing bigint', Buffer.from('v1:99999999999999999999').toString('base64url')],
    ['SQL', Buffer.from("v1:1' OR 1=1 --").toString('base64url')],
    ['empty', ''],
    ['too long', 'A'.repeat(500)],
  ])('a bad cursor (%s) answers 400', async (_name, cursor) => {
    await c.create({ key: 'ONE', value: secretValue() });
    const res = await c.list({ cursor });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'INVALID_INPUT',
      statusCode: 400,
      message: expect.stringMatching(/cursor/i),
    });
  });

  it.each([
    ['0', /limit/],
    ['1001', /limit/],
    ['-1', /limit/],
    ['1.5', /limit/],
    ['ten', /limit/],
  ])('limit=%s answers 400', async (limit, msg) => {
    const res = await c.list({ limit });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', message: expect.stringMatching(msg) });
  });

  it.each([
    [{ active: 'yes' }, /active/],
    [{ active: '1' }, /active/],
    [{ prefix: 'lower' }, /prefix/],
    [{ prefix: 'A%' }, /prefix/],
  ])('bad filter %j answers 400', async (query, msg) => {
    const res = await c.list(query);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', message: expect.stringMatching(msg) });
  });

  it('without a limit returns at most 1000 and a cursor to the rest', async () => {
    const values = Array.from(
      { length: 1003 },
      (_, i) => `('00000000-0000-4000-8000-${String(i).padStart(12, '0')}', 'BULK_${i}', 1)`,
    );
    await t.db.query(`INSERT INTO secrets (id, key, current_version) VALUES ${values.join(',')}`);
    const p1 = (await c.list()).json();
    expect(p1.secrets).toHaveLength(1000);
    expect(p1.secrets[0].key).toBe('BULK_1002');
    const p2 = (await c.list({ cursor: p1.nextCursor })).json();
    expect(keysOf(p2)).toEqual(['BULK_2', 'BULK_1', 'BULK_0']);
    expect(p2.nextCursor).toBeNull();
  });
});
