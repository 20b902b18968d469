import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { secretValue } from './helpers/secrets.js';

// The list used to order by the seq::text output column: "9" sorted above "10", so from the
// tenth secret on, "newest first" was wrong, and pages (cut on the numeric seq) skipped and
// repeated secrets. Twelve secrets cross that boundary.
let t: TestApp;
const keys = Array.from({ length: 12 }, (_, i) => `ORDER_${String(i + 1).padStart(2, '0')}`);

beforeAll(async () => {
  t = await createTestApp();
  for (const key of keys) {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key, value: secretValue() },
    });
    expect(r.statusCode).toBe(201);
  }
});
afterAll(async () => t?.close());

const newestFirst = [...keys].reverse();

it('lists newest first across the 9 -> 10 boundary', async () => {
  const r = await t.app.inject({ method: 'GET', url: '/api/secrets', headers: t.auth() });
  expect(r.statusCode).toBe(200);
  expect(r.json().secrets.map((s: { key: string }) => s.key)).toEqual(newestFirst);
});

it('pages through every secret exactly once, in order', async () => {
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/api/secrets?limit=5${cursor ? `&cursor=${cursor}` : ''}`;
    const r = await t.app.inject({ method: 'GET', url, headers: t.auth() });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { secrets: { key: string }[]; nextCursor: string | null };
    seen.push(...body.secrets.map((s) => s.key));
    cursor = body.nextCursor;
  } while (cursor);
  expect(seen).toEqual(newestFirst);
});
