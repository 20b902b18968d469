import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { api, counts } from '../helpers/http.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

describe('GET /api/secrets/:key', () => {
  it('returns {key, value} exactly', async () => {
    const value = secretValue();
    await c.create({ key: 'STRIPE_API_KEY', value });
    const res = await c.reveal('STRIPE_API_KEY');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ key: 'STRIPE_API_KEY', value });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('answers 404 with the seed body for an unknown key', async () => {
    const res = await c.reveal('INVALID_KEY');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: INVALID_KEY',
      statusCode: 404,
      nextActions: expect.any(String),
    });
  });

  it('answers 404 saying the secret is inactive, and how to restore it', async () => {
    const value = secretValue();
    await c.create({ key: 'GONE', value });
    await c.remove('GONE');
    const res = await c.reveal('GONE');
    expect(res.statusCode).toBe(404);
    const body = res.json();
    expect(body).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: GONE is inactive',
      statusCode: 404,
    });
    expect(body.nextActions).toMatch(/isActive/);
    expect(res.body).not.toContain(value);
  });

  it('answers 404 saying when the secret expired', async () => {
    const value = secretValue();
    await c.create({ key: 'OLD', value, expiresAt: '2020-01-01T00:00:00Z' });
    const res = await c.reveal('OLD');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: OLD expired at 2020-01-01T00:00:00.000Z',
      statusCode: 404,
    });
    expect(res.json().nextActions).toMatch(/expiresAt/);
    expect(res.body).not.toContain(value);
    // Clearing the expiry makes it readable again.
    expect((await c.update('OLD', { expiresAt: null })).statusCode).toBe(200);
    expect((await c.reveal('OLD')).json().value).toBe(value);
  });

  it('a future expiry still reads', async () => {
    const value = secretValue();
    await c.create({ key: 'SOON', value, expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await c.reveal('SOON')).json().value).toBe(value);
  });

  it('records lastUsedAt and lastUsedBy (the token sub) on a read, not on a failed read', async () => {
    await c.create({ key: 'USED', value: secretValue() });
    await c.create({ key: 'UNUSED', value: secretValue(), expiresAt: '2020-01-01T00:00:00Z' });
    const before = Date.now();
    expect((await api(t, 'ci-pipeline').reveal('USED')).statusCode).toBe(200);
    await api(t, 'ci-pipeline').reveal('UNUSED');
    const secrets = (await c.list()).json().secrets as Array<Record<string, string | null>>;
    const used = secrets.find((s) => s.key === 'USED')!;
    const unused = secrets.find((s) => s.key === 'UNUSED')!;
    expect(used.lastUsedBy).toBe('ci-pipeline');
    expect(Date.parse(used.lastUsedAt!)).toBeGreaterThanOrEqual(before - 5_000);
    expect(unused).toMatchObject({ lastUsedAt: null, lastUsedBy: null });
    // Another reader replaces the stamp.
    await api(t, 'dashboard').reveal('USED');
    const again = (await c.list()).json().secrets.find((s: { key: string }) => s.key === 'USED');
    expect(again.lastUsedBy).toBe('dashboard');
  });

  it('reads sent together (one shared SELECT) each get their own answer', async () => {
    const a1 = secretValue();
    const a2 = secretValue();
    const b = secretValue();
    const off = secretValue();
    await c.create({ key: 'BATCH_A', value: a1 });
    await c.update('BATCH_A', { value: a2 });
    await c.create({ key: 'BATCH_B', value: b });
    await c.create({ key: 'BATCH_OFF', value: off });
    await c.remove('BATCH_OFF');
    const get = (url: string) => c.send({ method: 'GET', url });
    // Asked at once, so they share statements (test/api/round-trips.test.ts counts them):
    // the same key at two versions, twice the same pair, another key, a missing one, a
    // deleted one and a version that does not exist.
    const urls = [
      '/api/secrets/BATCH_A',
      '/api/secrets/BATCH_A?version=1',
      '/api/secrets/BATCH_B',
      '/api/secrets/BATCH_A',
      '/api/secrets/BATCH_NONE',
      '/api/secrets/BATCH_OFF',
      '/api/secrets/BATCH_A?version=9',
      '/api/secrets/BATCH_B',
    ];
    const rs = await Promise.all(urls.map(get));
    expect(rs.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 404, 404, 404, 200]);
    expect(rs.map((r) => (r.statusCode === 200 ? r.json().value : r.json().message))).toEqual([
      a2,
      a1,
      b,
      a2,
      'Secret not found: BATCH_NONE',
      'Secret not found: BATCH_OFF is inactive',
      'Secret not found: BATCH_A has no version 9',
      b,
    ]);
    // A write acknowledged before the next reads is seen by all of them.
    const a3 = secretValue();
    await c.update('BATCH_A', { value: a3 });
    const again = await Promise.all(['/api/secrets/BATCH_A', '/api/secrets/BATCH_A'].map(get));
    expect(again.map((r) => r.json().value)).toEqual([a3, a3]);
  });

  const exact: Array<[string, string]> = [
    ['unicode', 'pässwörd-密码-пароль-كلمة'],
    ['emoji', '🔑🗝️👨‍👩‍👧‍👦 key 🏳️‍🌈'],
    ['leading and trailing whitespace', '  \t padded value \t  '],
    ['newlines (LF, CRLF, CR)', 'line1\nline2\r\nline3\rline4\n'],
    [
      'a PEM block',
      '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n',
    ],
    ['JSON and quotes', '{"a":"b\\"c","d":[1,2]}\'`'],
    ['combining characters, not normalised', 'e\u0301 vs \u00e9 and \u212b'],
    ['a single space', ' '],
    ['control characters', '\u0001\u0002\u001f\u007f'],
  ];
  it.each(exact)('stores %s byte for byte', async (_name, raw) => {
    const value = trackValue(raw);
    expect((await c.create({ key: 'EXACT', value })).statusCode).toBe(201);
    const res = await c.reveal('EXACT');
    expect(res.json().value).toBe(value);
    expect(Buffer.from(res.json().value, 'utf8').equals(Buffer.from(value, 'utf8'))).toBe(true);
    // And after an update through PUT.
    const updated = trackValue(`${raw}\u00a0${raw}`);
    await c.update('EXACT', { value: updated });
    expect((await c.reveal('EXACT')).json().value).toBe(updated);
  });
});

describe('size limit (MAX_VALUE_BYTES)', () => {
  let small: TestApp;
  let s: ReturnType<typeof api>;
  beforeAll(async () => {
    small = await createTestApp({ env: { MAX_VALUE_BYTES: '64' } });
    s = api(small);
  });
  afterAll(async () => small?.close());
  beforeEach(async () => small.reset());

  it('accepts a value of exactly the limit, counted in UTF-8 bytes', async () => {
    const value = trackValue(`${'€'.repeat(21)}x`); // 21 * 3 + 1 = 64 bytes
    expect((await s.create({ key: 'MAX', value })).statusCode).toBe(201);
    expect((await s.reveal('MAX')).json().value).toBe(value);
  });

  it('refuses one byte over with 413, on create and update, storing nothing', async () => {
    const value = trackValue(`${'€'.repeat(21)}xy`); // 65 bytes, 23 characters
    const res = await s.create({ key: 'BIG', value });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({
      error: 'PAYLOAD_TOO_LARGE',
      message: 'value is 65 bytes of UTF-8; the limit is 64 bytes',
      statusCode: 413,
    });
    expect(res.body).not.toContain(value);
    expect(await counts(small)).toEqual({ secrets: 0, versions: 0 });

    const ok = trackValue('small-value-ok');
    await s.create({ key: 'BIG', value: ok });
    const put = await s.update('BIG', { value, description: 'should not apply' });
    expect(put.statusCode).toBe(413);
    expect((await s.reveal('BIG')).json().value).toBe(ok);
    expect((await s.list()).json().secrets[0].description).toBeNull();
    expect(await counts(small)).toEqual({ secrets: 1, versions: 1 });
  });

  it('a body far beyond the limit is refused with 413 before parsing', async () => {
    const huge = trackValue('z'.repeat(64 * 6 + 70 * 1024));
    const res = await s.create({ key: 'HUGE', value: huge });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: 'PAYLOAD_TOO_LARGE', statusCode: 413 });
    expect(await counts(small)).toEqual({ secrets: 0, versions: 0 });
  });

  it('the default limit is 64 KiB', async () => {
    const value = trackValue('a'.repeat(64 * 1024));
    expect((await c.create({ key: 'DEFAULT_MAX', value })).statusCode).toBe(201);
    expect((await c.reveal('DEFAULT_MAX')).json().value).toBe(value);
    const over = trackValue(`b${'a'.repeat(64 * 1024)}`);
    expect((await c.create({ key: 'DEFAULT_OVER', value: over })).statusCode).toBe(413);
  });
});
