import { expect, it } from 'vitest';
import { YIELD_EVERY } from '../../src/in-chunks.js';
import { useTestApp } from '../helpers/app.js';

/**
 * Issue 21, fair sharing of the event loop: an export or render of many secrets opens their
 * values in chunks and yields between them (the yielding itself: test/unit/in-chunks.test.ts).
 * Here, on both backends: single-key reads sent alongside a large export or render are all
 * served, and the bulk request still returns every value.
 */
const t = useTestApp();
const N = YIELD_EVERY * 3 + 50;

async function seed(prefix: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets/batch',
    headers: t.auth(),
    payload: { secrets: Array.from({ length: N }, (_, i) => ({ key: `${prefix}_${i}`, value: `v${i}` })) },
  });
  expect(res.statusCode).toBe(200);
}

it.each([
  ['export', { method: 'GET', url: '/api/secrets/export?prefix=YIELD_E_' }, 'YIELD_E'],
  [
    'render',
    {
      method: 'POST',
      url: '/api/secrets/render',
      payload: { template: Array.from({ length: N }, (_, i) => `{{Secrets.YIELD_R_${i}}}`).join(' ') },
    },
    'YIELD_R',
  ],
] as const)('single-key reads sent alongside a %s of many values are served', async (what, request, prefix) => {
  await seed(prefix);
  const bulk = t.app.inject({ ...request, headers: t.auth() });
  const reads = Array.from({ length: 10 }, (_, i) =>
    t.app
      .inject({ method: 'GET', url: `/api/secrets/${prefix}_${i}`, headers: t.auth('other') })
      .then((r) => r.statusCode),
  );
  const res = await bulk;
  expect(res.statusCode).toBe(200);
  expect(await Promise.all(reads)).toEqual(Array(10).fill(200));
  if (what === 'export') expect(Object.keys(res.json())).toHaveLength(N);
  else expect((res.json() as { rendered: string }).rendered.split(' ')).toHaveLength(N);
});
