import { beforeEach, describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api, counts, rowOf } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Bad input of every kind: each answer is a 4xx with the error body and a message that
 * says what is wrong, and nothing is stored or changed (checked with plain SQL).
 */
const t = useTestApp({ resetEachTest: true });
const c = api(t);

const KEY_FORMAT =
  'Invalid key format. Use uppercase letters, numbers, and underscores only (e.g., STRIPE_API_KEY)';
const v = () => secretValue('bad');

function expectError(
  res: { statusCode: number; json(): unknown; body: string },
  status: number,
  message: RegExp | string,
) {
  expect(res.statusCode).toBe(status);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(expect.arrayContaining(['error', 'message', 'statusCode']));
  expect(body.statusCode).toBe(status);
  expect(body.error).toBe(status === 413 ? 'PAYLOAD_TOO_LARGE' : 'INVALID_INPUT');
  if (typeof message === 'string') expect(body.message).toBe(message);
  else expect(body.message).toMatch(message);
}

describe('POST /api/secrets with bad JSON bodies', () => {
  const cases: Array<[string, () => unknown, RegExp | string]> = [
    ['empty object', () => ({}), /^Both key and value are required/],
    ['missing value', () => ({ key: 'A' }), 'Both key and value are required'],
    ['missing key', () => ({ value: v() }), 'Both key and value are required'],
    ['value is a number', () => ({ key: 'A', value: 12345 }), 'value must be a string'],
    ['value is an object', () => ({ key: 'A', value: { nested: v() } }), 'value must be a string'],
    ['value is null', () => ({ key: 'A', value: null }), 'value must be a string'],
    ['value is an array', () => ({ key: 'A', value: [v()] }), 'value must be a string'],
    ['value is a boolean', () => ({ key: 'A', value: true }), 'value must be a string'],
    ['value is empty', () => ({ key: 'A', value: '' }), 'value must not be empty'],
    ['lowercase key', () => ({ key: 'stripe_api_key', value: v() }), KEY_FORMAT],
    ['mixed-case key', () => ({ key: 'Stripe_Key', value: v() }), KEY_FORMAT],
    ['key with a dash', () => ({ key: 'STRIPE-KEY', value: v() }), KEY_FORMAT],
    ['key with a dot', () => ({ key: 'STRIPE.KEY', value: v() }), KEY_FORMAT],
    ['key with a space', () => ({ key: 'STRIPE KEY', value: v() }), KEY_FORMAT],
    ['key with a slash', () => ({ key: 'A/B', value: v() }), KEY_FORMAT],
    ['key with a non-ASCII letter', () => ({ key: 'ÄPI_KEY', value: v() }), KEY_FORMAT],
    ['key with a trailing newline', () => ({ key: 'KEY\n', value: v() }), KEY_FORMAT],
    ['empty key', () => ({ key: '', value: v() }), KEY_FORMAT],
    ['key of 129 chars', () => ({ key: 'K'.repeat(129), value: v() }), /at most 128 characters/],
    ['key is a number', () => ({ key: 42, value: v() }), 'key must be a string'],
    ['key is null', () => ({ key: null, value: v() }), 'key must be a string'],
    [
      'isReserved is a string',
      () => ({ key: 'A', value: v(), isReserved: 'true' }),
      /isReserved must be a boolean/,
    ],
    ['isReserved is 1', () => ({ key: 'A', value: v(), isReserved: 1 }), /isReserved must be a boolean/],
    [
      'isReserved is null',
      () => ({ key: 'A', value: v(), isReserved: null }),
      /isReserved must be a boolean/,
    ],
    [
      'expiresAt is prose',
      () => ({ key: 'A', value: v(), expiresAt: 'tomorrow' }),
      /expiresAt must be an ISO 8601/,
    ],
    ['expiresAt is a date only', () => ({ key: 'A', value: v(), expiresAt: '2030-01-01' }), /expiresAt/],
    [
      'expiresAt has no zone',
      () => ({ key: 'A', value: v(), expiresAt: '2030-01-01T00:00:00' }),
      /expiresAt/,
    ],
    ['expiresAt month 13', () => ({ key: 'A', value: v(), expiresAt: '2030-13-01T00:00:00Z' }), /expiresAt/],
    ['expiresAt Feb 30', () => ({ key: 'A', value: v(), expiresAt: '2030-02-30T00:00:00Z' }), /expiresAt/],
    ['expiresAt US format', () => ({ key: 'A', value: v(), expiresAt: '01/02/2030' }), /expiresAt/],
    [
      'expiresAt RFC 2822',
      () => ({ key: 'A', value: v(), expiresAt: 'Tue, 01 Jan 2030 00:00:00 GMT' }),
      /expiresAt/,
    ],
    ['expiresAt epoch number', () => ({ key: 'A', value: v(), expiresAt: 1893456000 }), /expiresAt/],
    ['expiresAt is an object', () => ({ key: 'A', value: v(), expiresAt: {} }), /expiresAt/],
    [
      'description is a number',
      () => ({ key: 'A', value: v(), description: 5 }),
      /description must be a string/,
    ],
    ['description too long', () => ({ key: 'A', value: v(), description: 'd'.repeat(1025) }), /at most 1024/],
    ['description with NUL', () => ({ key: 'A', value: v(), description: 'a\u0000b' }), /NUL/],
    ['unknown field', () => ({ key: 'A', value: v(), isActive: false }), /Unknown field\(s\): isActive/],
    ['unknown fields', () => ({ key: 'A', value: v(), foo: 1, bar: 2 }), /Unknown field\(s\): foo, bar/],
    ['body is an array', () => [{ key: 'A', value: v() }], 'Request body must be a JSON object'],
  ];
  it.each(cases)('%s: 400, nothing stored', async (_name, make, message) => {
    const body = make();
    const res = await c.create(body);
    expectError(res, 400, message);
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });
});

describe('POST /api/secrets with raw bodies', () => {
  const raw = (payload: string | undefined, contentType?: string) =>
    c.send({
      method: 'POST',
      url: '/api/secrets',
      ...(payload === undefined ? {} : { payload }),
      headers: contentType ? { 'content-type': contentType } : {},
    });

  it.each([
    ['truncated JSON', '{"key":"A","value":"x', 'Request body is not valid JSON'],
    ['single quotes', "{'key':'A','value':'x'}", 'Request body is not valid JSON'],
    ['trailing comma', '{"key":"A","value":"x",}', 'Request body is not valid JSON'],
    ['plain text', 'hello', 'Request body is not valid JSON'],
    ['__proto__ key', '{"__proto__":{"admin":true},"key":"A","value":"x"}', /Request body/],
    ['JSON null', 'null', 'Request body must be a JSON object'],
    ['JSON string', '"KEY=value"', 'Request body must be a JSON object'],
    ['JSON number', '42', 'Request body must be a JSON object'],
    ['empty body', '', /Request body is empty/],
    ['lone surrogate', '{"key":"A","value":"ab\\ud800cd"}', /unpaired surrogate/],
  ])('%s with application/json: 400, nothing stored', async (_name, payload, message) => {
    expectError(await raw(payload, 'application/json'), 400, message);
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });

  it.each([
    ['text/plain', 'key=A&value=x'],
    ['application/x-www-form-urlencoded', 'key=A&value=x'],
    [
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="key"\r\n\r\nA\r\n--x--',
    ],
    ['application/xml', '<key>A</key>'],
  ])('content type %s: 415 saying to send JSON, nothing stored', async (type, payload) => {
    const res = await raw(payload, type);
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({
      error: 'INVALID_INPUT',
      statusCode: 415,
      message: expect.stringMatching(/application\/json/),
    });
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });

  it('no body and no content type: 400', async () => {
    const res = await raw(undefined);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', statusCode: 400 });
    expect(await counts(t)).toEqual({ secrets: 0, versions: 0 });
  });

  it('a JSON body with a charset parameter is accepted', async () => {
    const res = await raw(JSON.stringify({ key: 'CHARSET', value: v() }), 'application/json; charset=utf-8');
    expect(res.statusCode).toBe(201);
  });
});

describe('PUT /api/secrets/:key with bad input changes nothing', () => {
  let value: string;
  let before: Record<string, unknown> | undefined;
  beforeEach(async () => {
    value = secretValue('kept');
    await c.create({ key: 'TARGET', value, description: 'kept' });
    before = await rowOf(t, 'TARGET');
  });
  const unchanged = async () => {
    expect(await rowOf(t, 'TARGET')).toEqual(before);
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
    expect((await c.reveal('TARGET')).json().value).toBe(value);
  };

  it.each([
    ['empty object', {}, /at least one of: value, isActive, isReserved, isWriteOnly, expiresAt, description/],
    ['value is a number', { value: 1 }, 'value must be a string'],
    ['value is null', { value: null }, 'value must be a string'],
    ['value is an object', { value: { a: 1 } }, 'value must be a string'],
    ['value is an array', { value: ['x'] }, 'value must be a string'],
    ['value is empty', { value: '' }, 'value must not be empty'],
    ['isActive is a string', { isActive: 'false' }, /isActive must be a boolean/],
    ['isActive is 0', { isActive: 0 }, /isActive must be a boolean/],
    ['isReserved is a string', { isReserved: 'yes' }, /isReserved must be a boolean/],
    ['expiresAt is not ISO', { expiresAt: '31.12.2030' }, /expiresAt/],
    ['expiresAt is empty', { expiresAt: '' }, /expiresAt/],
    ['unknown field', { key: 'OTHER' }, /Unknown field\(s\): key/],
    ['valid field plus an unknown one', { value: 'x-new-value', ttl: 5 }, /Unknown field\(s\): ttl/],
    ['array body', [{ value: 'x' }], 'Request body must be a JSON object'],
  ])('%s: 400', async (_name, body, message) => {
    expectError(await c.update('TARGET', body), 400, message);
    await unchanged();
  });

  it.each([
    ['non-JSON', '{value:', 'application/json', 400],
    ['empty body', '', 'application/json', 400],
    ['text/plain', 'value=x', 'text/plain', 415],
  ])('%s body: 4xx', async (_name, payload, type, status) => {
    const res = await c.send({
      method: 'PUT',
      url: '/api/secrets/TARGET',
      payload,
      headers: { 'content-type': type },
    });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', statusCode: status });
    await unchanged();
  });

  it('no body at all: 400', async () => {
    const res = await c.send({ method: 'PUT', url: '/api/secrets/TARGET' });
    expect(res.statusCode).toBe(400);
    await unchanged();
  });
});

describe('bad keys in the path', () => {
  it.each([
    ['GET', 'lowercase'],
    ['GET', 'A-B'],
    ['GET', 'A%20B'],
    ['GET', 'K'.repeat(129)],
    ['DELETE', 'lower'],
    ['DELETE', 'A.B'],
    ['PUT', 'lower'],
    ['PUT', '%C3%84'],
  ])('%s /api/secrets/%s: 400 with the key format message', async (method, key) => {
    await c.create({ key: 'KEEP', value: v() });
    const res = await c.send({
      method: method as 'GET',
      url: `/api/secrets/${key}`,
      ...(method === 'PUT' ? { payload: { value: v() } } : {}),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'INVALID_INPUT', statusCode: 400 });
    expect(res.json().message).toMatch(/Invalid key format/);
    expect(await counts(t)).toEqual({ secrets: 1, versions: 1 });
  });

  it('unknown routes answer 404 with the error body', async () => {
    const res = await c.send({ method: 'GET', url: '/api/secrets/A/B' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      error: 'NOT_FOUND',
      statusCode: 404,
      message: 'Route GET /api/secrets/A/B not found',
    });
  });
});
