import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api, counts, rowOf } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

const meta = async (key: string) =>
  (await c.list()).json().secrets.find((s: { key: string }) => s.key === key) as Record<string, unknown>;

describe('PUT /api/secrets/:key', () => {
  it('changes the value: 200 with the documented body, stored as a new version', async () => {
    await c.create({ key: 'STRIPE_API_KEY', value: secretValue() });
    const value = secretValue('new');
    const res = await c.update('STRIPE_API_KEY', { value });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      success: true,
      message: 'Secret STRIPE_API_KEY has been updated successfully',
    });
    expect(res.body).not.toContain(value);
    expect((await c.reveal('STRIPE_API_KEY')).json()).toEqual({ key: 'STRIPE_API_KEY', value });
    expect(await counts(t)).toEqual({ secrets: 1, versions: 2 });
    expect((await meta('STRIPE_API_KEY')).version).toBe(2);
  });

  it('changes metadata without touching the value or adding a version', async () => {
    const value = secretValue();
    await c.create({ key: 'META', value });
    const before = await meta('META');
    const res = await c.update('META', {
      description: 'rotated quarterly',
      expiresAt: '2099-12-31T23:59:59Z',
      isReserved: true,
    });
    expect(res.statusCode).toBe(200);
    const after = await meta('META');
    expect(after).toMatchObject({
      description: 'rotated quarterly',
      expiresAt: '2099-12-31T23:59:59.000Z',
      isReserved: true,
      isActive: true,
      version: 1,
      createdAt: before.createdAt,
    });
    expect(Date.parse(after.updatedAt as string)).toBeGreaterThanOrEqual(
      Date.parse(before.updatedAt as string),
    );
    expect((await c.reveal('META')).json().value).toBe(value);
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
  });

  it('expiresAt null clears the expiry; description null clears the description', async () => {
    await c.create({ key: 'EXP', value: secretValue(), expiresAt: '2020-01-01T00:00:00Z', description: 'd' });
    expect((await c.reveal('EXP')).statusCode).toBe(404);
    expect((await c.update('EXP', { expiresAt: null, description: null })).statusCode).toBe(200);
    expect(await meta('EXP')).toMatchObject({ expiresAt: null, description: null });
    expect((await c.reveal('EXP')).statusCode).toBe(200);
  });

  it('omitted fields are left as they are', async () => {
    await c.create({
      key: 'KEEP',
      value: secretValue(),
      expiresAt: '2099-01-01T00:00:00Z',
      description: 'd',
      isReserved: true,
    });
    await c.update('KEEP', { value: secretValue() });
    expect(await meta('KEEP')).toMatchObject({
      expiresAt: '2099-01-01T00:00:00.000Z',
      description: 'd',
      isReserved: true,
    });
  });

  it('can deactivate and reactivate (isActive)', async () => {
    const value = secretValue();
    await c.create({ key: 'TOGGLE', value });
    expect((await c.update('TOGGLE', { isActive: false })).statusCode).toBe(200);
    expect((await c.reveal('TOGGLE')).json().message).toBe('Secret not found: TOGGLE is inactive');
    expect((await c.update('TOGGLE', { isActive: true })).statusCode).toBe(200);
    expect((await c.reveal('TOGGLE')).json().value).toBe(value);
  });

  it('can set a value on an inactive secret without reactivating it', async () => {
    await c.create({ key: 'DORMANT', value: secretValue() });
    await c.remove('DORMANT');
    expect((await c.update('DORMANT', { value: secretValue() })).statusCode).toBe(200);
    expect((await meta('DORMANT')).isActive).toBe(false);
  });

  it('answers 404 with the seed body for an unknown key, storing nothing', async () => {
    const res = await c.update('INVALID_KEY', { value: secretValue() });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: INVALID_KEY',
      statusCode: 404,
    });
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });

  it('reserved: cannot be deactivated (403), changes nothing; isReserved:false then deactivate works', async () => {
    const value = secretValue();
    await c.create({ key: 'OPENAI_API_KEY', value, isReserved: true });
    const before = await rowOf(t, 'OPENAI_API_KEY');
    const res = await c.update('OPENAI_API_KEY', {
      isActive: false,
      value: secretValue('nope'),
      description: 'x',
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      error: 'FORBIDDEN',
      message: 'Cannot deactivate reserved secret: OPENAI_API_KEY',
      statusCode: 403,
      nextActions: expect.stringMatching(/isReserved/),
    });
    expect(await rowOf(t, 'OPENAI_API_KEY')).toEqual(before);
    expect((await c.reveal('OPENAI_API_KEY')).json().value).toBe(value);

    expect((await c.update('OPENAI_API_KEY', { isReserved: false })).statusCode).toBe(200);
    expect((await c.update('OPENAI_API_KEY', { isActive: false })).statusCode).toBe(200);
    expect((await meta('OPENAI_API_KEY')).isActive).toBe(false);
  });

  it('reserved secrets can still change value and metadata', async () => {
    await c.create({ key: 'RES', value: secretValue(), isReserved: true });
    const value = secretValue();
    expect((await c.update('RES', { value, description: 'ok', isActive: true })).statusCode).toBe(200);
    expect((await c.reveal('RES')).json().value).toBe(value);
  });
});
