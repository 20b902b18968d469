import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api, counts, UUID } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

describe('POST /api/secrets', () => {
  it('answers 201 with the documented body and stores the value', async () => {
    const value = secretValue();
    const res = await c.create({ key: 'STRIPE_API_KEY', value });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      success: true,
      message: 'Secret STRIPE_API_KEY has been created successfully',
      id: expect.stringMatching(UUID),
    });
    expect(JSON.stringify(body)).not.toContain(value);
    expect((await c.reveal('STRIPE_API_KEY')).json()).toEqual({ key: 'STRIPE_API_KEY', value });
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
  });

  it('stores the optional fields: isReserved, expiresAt, description', async () => {
    const res = await c.create({
      key: 'OPENAI_API_KEY',
      value: secretValue(),
      isReserved: true,
      expiresAt: '2099-01-02T03:04:05+02:00',
      description: 'OpenAI key for the chatbot',
    });
    expect(res.statusCode).toBe(201);
    const [meta] = (await c.list()).json().secrets;
    expect(meta).toMatchObject({
      id: res.json().id,
      key: 'OPENAI_API_KEY',
      isActive: true,
      isReserved: true,
      expiresAt: '2099-01-02T01:04:05.000Z',
      description: 'OpenAI key for the chatbot',
      lastUsedAt: null,
      lastUsedBy: null,
    });
  });

  it('defaults: not reserved, no expiry, no description, active', async () => {
    await c.create({ key: 'PLAIN', value: secretValue() });
    const [meta] = (await c.list()).json().secrets;
    expect(meta).toMatchObject({ isActive: true, isReserved: false, expiresAt: null, description: null });
    expect(Date.parse(meta.createdAt)).not.toBeNaN();
    expect(meta.createdAt).toBe(meta.updatedAt);
  });

  it('refuses an existing active key with 409 and the seed body, changing nothing', async () => {
    const first = secretValue();
    await c.create({ key: 'STRIPE_API_KEY', value: first });
    const second = secretValue();
    const res = await c.create({ key: 'STRIPE_API_KEY', value: second, isReserved: true });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({
      error: 'INVALID_INPUT',
      message: 'Secret already exists: STRIPE_API_KEY',
      statusCode: 409,
      nextActions: expect.any(String),
    });
    expect(res.body).not.toContain(second);
    expect((await c.reveal('STRIPE_API_KEY')).json().value).toBe(first);
    expect((await c.list()).json().secrets[0].isReserved).toBe(false);
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
  });

  it('revives a soft-deleted key under the same id with the new value, flags and expiry', async () => {
    const created = await c.create({
      key: 'REVIVE_ME',
      value: secretValue(),
      expiresAt: '2099-01-01T00:00:00Z',
      description: 'old',
    });
    const id = created.json().id;
    expect((await c.remove('REVIVE_ME')).statusCode).toBe(200);
    const value = secretValue('revived');
    const res = await c.create({ key: 'REVIVE_ME', value, isReserved: true, description: 'new' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({
      success: true,
      message: 'Secret REVIVE_ME has been created successfully',
      id,
    });
    expect((await c.reveal('REVIVE_ME')).json()).toEqual({ key: 'REVIVE_ME', value });
    const [meta] = (await c.list()).json().secrets;
    // An omitted expiresAt on revive means "no expiry", not "keep the old one".
    expect(meta).toMatchObject({ id, isActive: true, isReserved: true, expiresAt: null, description: 'new' });
    expect(await counts(t)).toEqual({ secrets: 1, versions: 2 });
  });

  it('revives an expired-then-deleted key and the old value is gone', async () => {
    const old = secretValue('old');
    await c.create({ key: 'ROTATED', value: old });
    await c.remove('ROTATED');
    const fresh = secretValue('fresh');
    await c.create({ key: 'ROTATED', value: fresh });
    const read = await c.reveal('ROTATED');
    expect(read.json().value).toBe(fresh);
    expect(read.body).not.toContain(old);
  });

  it('accepts keys of 1 and 128 characters from the whole alphabet', async () => {
    for (const key of ['A', '0', '_', `${'ABCXYZ_0189'.repeat(11)}ABCDEFG`.slice(0, 128)]) {
      const res = await c.create({ key, value: secretValue() });
      expect(res.statusCode, key).toBe(201);
    }
    expect((await counts(t)).secrets).toBe(4);
  });
});
