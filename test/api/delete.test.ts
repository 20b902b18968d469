import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api, counts, rowOf } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });
const c = api(t);

describe('DELETE /api/secrets/:key', () => {
  it('soft-deletes: 200 with the documented body; the row stays, inactive, listed', async () => {
    const value = secretValue();
    await c.create({ key: 'STRIPE_API_KEY', value });
    const res = await c.remove('STRIPE_API_KEY');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      success: true,
      message: 'Secret STRIPE_API_KEY has been deleted successfully',
    });
    expect((await c.reveal('STRIPE_API_KEY')).statusCode).toBe(404);
    const [meta] = (await c.list()).json().secrets;
    expect(meta).toMatchObject({ key: 'STRIPE_API_KEY', isActive: false });
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
  });

  it('is idempotent: deleting an inactive secret answers 200 and changes nothing', async () => {
    await c.create({ key: 'TWICE', value: secretValue() });
    await c.remove('TWICE');
    const before = await rowOf(t, 'TWICE');
    const res = await c.remove('TWICE');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ success: true, message: 'Secret TWICE has been deleted successfully' });
    expect(await rowOf(t, 'TWICE')).toEqual(before);
  });

  it('refuses a reserved secret with 403 and the seed body', async () => {
    const value = secretValue();
    await c.create({ key: 'OPENAI_API_KEY', value, isReserved: true });
    const res = await c.remove('OPENAI_API_KEY');
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      error: 'FORBIDDEN',
      message: 'Cannot delete reserved secret: OPENAI_API_KEY',
      statusCode: 403,
      nextActions: expect.any(String),
    });
    expect((await c.reveal('OPENAI_API_KEY')).json().value).toBe(value);
  });

  it('deletes a formerly reserved secret once isReserved is false', async () => {
    await c.create({ key: 'UNRESERVE', value: secretValue(), isReserved: true });
    await c.update('UNRESERVE', { isReserved: false });
    expect((await c.remove('UNRESERVE')).statusCode).toBe(200);
  });

  it('answers 404 with the seed body for an unknown key', async () => {
    const res = await c.remove('INVALID_KEY');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'Secret not found: INVALID_KEY',
      statusCode: 404,
    });
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });
});
