import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp();

it('creates and reads back a secret', async () => {
  const value = secretValue();
  const c = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'SMOKE', value },
  });
  expect(c.statusCode).toBe(201);
  const r = await t.app.inject({ method: 'GET', url: '/api/secrets/SMOKE', headers: t.auth() });
  expect(r.json()).toEqual({ key: 'SMOKE', value });
});
