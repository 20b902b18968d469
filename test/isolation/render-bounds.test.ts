import { expect, it } from 'vitest';
import { apiKey, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';

/**
 * Issue 21 finding 3: a render is bounded work. A template names at most 1000 distinct secrets
 * (as many as an import holds), a refused flood leaves one audit row instead of one per name,
 * and every name counts against the read limit whether it exists or not. Both backends.
 */
const t = useTestApp({ env: { READ_RATE_LIMIT: '60' } });

const template = (names: string[]) => names.map((n) => `{{Secrets.${n}}}`).join('\n');
const rowsOf = async (actor: string) =>
  (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log WHERE actor = $1', [actor]))[0]!
    .n;

it('refuses a template naming 11,000 missing secrets with 400 and one audit row', async () => {
  const reader = await createAccessKey(t, { scopes: ['secrets:read'] });
  const names = Array.from({ length: 11_000 }, (_, i) => `MISSING_${i}`);
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets/render',
    headers: apiKey(reader.token),
    payload: { template: template(names) },
  });
  expect(res.statusCode).toBe(400);
  expect(res.json().message).toContain('at most 1000');
  expect(await rowsOf(`access_key:${reader.id}`)).toBe(1);
});

it('counts every name against the read limit, found or not', async () => {
  const reader = await createAccessKey(t, { scopes: ['secrets:read'] });
  const render = (names: string[]) =>
    t.app.inject({
      method: 'POST',
      url: '/api/secrets/render',
      headers: apiKey(reader.token),
      payload: { template: template(names) },
    });
  const first = await render(Array.from({ length: 50 }, (_, i) => `NOPE_${i}`));
  expect(first.statusCode).toBe(400);
  // 50 of the 60 reads a minute are spent: 20 more names are over the limit.
  const second = await render(Array.from({ length: 20 }, (_, i) => `NOPE_B_${i}`));
  expect(second.statusCode).toBe(429);
  expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
});
