import { expect, it } from 'vitest';
import { apiKey, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Issue 21 finding 6: reviving a reserved, soft-deleted secret keeps it reserved unless an
 * admin says otherwise, on POST and in a batch alike; an access key asking to un-reserve by
 * reviving gets 403 (audited), as on PUT. Both backends.
 */
const t = useTestApp();

/** A soft-deleted secret that is reserved (an admin reserved it after deleting it). */
async function deletedReserved(key: string) {
  const value = trackValue(secretValue('rev'));
  const admin = t.auth();
  expect(
    (await t.app.inject({ method: 'POST', url: '/api/secrets', headers: admin, payload: { key, value } }))
      .statusCode,
  ).toBe(201);
  expect(
    (await t.app.inject({ method: 'DELETE', url: `/api/secrets/${key}`, headers: admin })).statusCode,
  ).toBe(200);
  const put = await t.app.inject({
    method: 'PUT',
    url: `/api/secrets/${key}`,
    headers: admin,
    payload: { isReserved: true },
  });
  expect(put.statusCode).toBe(200);
}

const reserved = async (key: string) =>
  (
    await t.db.query<{ is_reserved: boolean; is_active: boolean }>(
      'SELECT is_reserved, is_active FROM secrets WHERE key = $1',
      [key],
    )
  )[0]!;

it('POST by an access key revives a reserved secret as reserved', async () => {
  await deletedReserved('REV_POST');
  const writer = await createAccessKey(t, { scopes: ['secrets:write'] });
  const value = trackValue(secretValue('rev2'));
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: apiKey(writer.token),
    payload: { key: 'REV_POST', value },
  });
  expect(res.statusCode).toBe(201);
  expect(await reserved('REV_POST')).toEqual({ is_reserved: true, is_active: true });
});

it('a batch by an access key revives a reserved secret as reserved', async () => {
  await deletedReserved('REV_BATCH');
  const writer = await createAccessKey(t, { scopes: ['secrets:write'] });
  const value = trackValue(secretValue('rev3'));
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets/batch',
    headers: apiKey(writer.token),
    payload: { secrets: [{ key: 'REV_BATCH', value }] },
  });
  expect(res.statusCode).toBe(200);
  expect(await reserved('REV_BATCH')).toEqual({ is_reserved: true, is_active: true });
});

it('an access key asking to un-reserve by reviving gets 403 and changes nothing; an admin may', async () => {
  await deletedReserved('REV_ASK');
  const writer = await createAccessKey(t, { scopes: ['secrets:write'] });
  const value = trackValue(secretValue('rev4'));
  const payload = { key: 'REV_ASK', value, isReserved: false };
  const post = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: apiKey(writer.token),
    payload,
  });
  expect(post.statusCode).toBe(403);
  const batch = await t.app.inject({
    method: 'POST',
    url: '/api/secrets/batch',
    headers: apiKey(writer.token),
    payload: { secrets: [payload] },
  });
  expect(batch.statusCode).toBe(403);
  expect(await reserved('REV_ASK')).toEqual({ is_reserved: true, is_active: false });
  const denied = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit_log WHERE key = 'REV_ASK' AND outcome = 'denied'`,
  );
  expect(denied[0]!.n).toBe(2);
  const admin = await t.app.inject({ method: 'POST', url: '/api/secrets', headers: t.auth(), payload });
  expect(admin.statusCode).toBe(201);
  expect(await reserved('REV_ASK')).toEqual({ is_reserved: false, is_active: true });
});
