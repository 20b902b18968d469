import { expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';

// Regression: the lists selected their keyset column as text under the same name, and
// ORDER BY <name> binds to the output column, so "9" sorted after "10" once there were
// ten or more rows and keyset pages skipped or repeated rows.
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });

it('lists secrets, access keys and audit rows newest first in numeric order across pages', async () => {
  const keys = Array.from({ length: 12 }, (_, i) => `ORDER_${String(i).padStart(2, '0')}`);
  for (const key of keys) {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key, value: secretValue() },
    });
    expect(r.statusCode).toBe(201);
  }
  const all = (await t.app.inject({ method: 'GET', url: '/api/secrets', headers: t.auth() })).json();
  expect(all.secrets.map((s: { key: string }) => s.key)).toEqual([...keys].reverse());
  const paged: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { secrets: { key: string }[]; nextCursor: string | null } = (
      await t.app.inject({
        method: 'GET',
        url: `/api/secrets?limit=5${cursor ? `&cursor=${cursor}` : ''}`,
        headers: t.auth(),
      })
    ).json();
    paged.push(...page.secrets.map((s: { key: string }) => s.key));
    cursor = page.nextCursor;
  } while (cursor);
  expect(paged).toEqual([...keys].reverse());

  for (let i = 0; i < 11; i++) await createAccessKey(t, { name: `order-${i}`, scopes: ['secrets:read'] });
  const ak = (await t.app.inject({ method: 'GET', url: '/api/access-keys', headers: t.auth() })).json();
  expect(ak.accessKeys.map((k: { name: string }) => k.name)).toEqual(
    Array.from({ length: 11 }, (_, i) => `order-${10 - i}`),
  );

  const audit = (
    await t.app.inject({ method: 'GET', url: '/api/audit?limit=1000', headers: t.auth() })
  ).json();
  const ids = audit.entries.map((e: { id: string }) => Number(e.id));
  expect(ids.length).toBeGreaterThan(20);
  expect(ids).toEqual([...ids].sort((a, b) => b - a));
});
