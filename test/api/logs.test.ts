import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { capturedLogs, secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Provokes the failures most likely to leak a value (integrity failure, a body the JSON
 * parser rejects, an oversize value, a 415) and checks no value reaches a log line or an
 * error body. test/setup.ts also scans every line this file's apps wrote.
 */
const t = useTestApp({ env: { MAX_VALUE_BYTES: '256' }, resetEachTest: true });
const c = api(t);

const linesSince = (mark: number) => capturedLogs.slice(mark).join('');
const expectNowhere = (value: string, mark: number, body: string) => {
  expect(body).not.toContain(value);
  expect(linesSince(mark)).not.toContain(value);
};

it('the log is captured at trace level and carries request ids', async () => {
  const mark = capturedLogs.length;
  await c.send({ method: 'GET', url: '/api/secrets', headers: { 'x-request-id': 'trace-me-123' } });
  const lines = capturedLogs.slice(mark).map((l) => JSON.parse(l));
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.some((l) => l.reqId === 'trace-me-123')).toBe(true);
  // The Authorization header is never logged as given.
  expect(linesSince(mark)).not.toMatch(/Bearer ey/);
});

it('an integrity failure logs a line naming the secret, never its value', async () => {
  const value = secretValue('integrity');
  await c.create({ key: 'BROKEN', value });
  await t.db.query(`UPDATE secret_versions SET ciphertext = '\\x00'::bytea || ciphertext`);
  const mark = capturedLogs.length;
  const res = await c.reveal('BROKEN');
  expect(res.statusCode).toBe(500);
  expect(res.json().error).toBe('DECRYPTION_FAILED');
  expectNowhere(value, mark, res.body);
  const line = capturedLogs
    .slice(mark)
    .map((l) => JSON.parse(l))
    .find((l) => l.msg === 'stored secret failed its integrity check');
  expect(line).toMatchObject({ secretKey: 'BROKEN', level: 50 });
});

it('a malformed JSON body containing a value is refused without echoing it', async () => {
  const value = secretValue('badjson');
  const mark = capturedLogs.length;
  for (const payload of [
    `{"key":"LEAK","value":"${value}"`,
    `{"key":"LEAK","value":"${value}",}`,
    `{"key":"LEAK","value":${value}}`,
  ]) {
    const res = await c.send({
      method: 'POST',
      url: '/api/secrets',
      payload,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(400);
    expectNowhere(value, mark, res.body);
  }
  const put = await c.send({
    method: 'PUT',
    url: '/api/secrets/LEAK',
    payload: `{"value":"${value}"`,
    headers: { 'content-type': 'application/json' },
  });
  expect(put.statusCode).toBe(400);
  expectNowhere(value, mark, put.body);
});

it('an oversize value, or a value of the wrong type, is refused without echoing it', async () => {
  const big = trackValue(`${secretValue('big')}${'x'.repeat(300)}`);
  const mark = capturedLogs.length;
  const res = await c.create({ key: 'BIG', value: big });
  expect(res.statusCode).toBe(413);
  expectNowhere(big, mark, res.body);
  const v = secretValue('typed');
  const typed = await c.create({ key: 'TYPED', value: { nested: v } });
  expect(typed.statusCode).toBe(400);
  expectNowhere(v, mark, typed.body);
  const lowercase = secretValue('lower');
  const badKey = await c.create({ key: 'lower', value: lowercase, extra: lowercase });
  expect(badKey.statusCode).toBe(400);
  expectNowhere(lowercase, mark, badKey.body);
});

it('a wrong content type with a value in the body is refused without echoing it', async () => {
  const value = secretValue('form');
  const mark = capturedLogs.length;
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    const res = await c.send({
      method: 'POST',
      url: '/api/secrets',
      payload: `key=FORM&value=${value}`,
      headers: { 'content-type': type },
    });
    expect(res.statusCode).toBe(415);
    expectNowhere(value, mark, res.body);
  }
});

it('successful writes and reads log nothing of the value', async () => {
  const value = secretValue('ok');
  const mark = capturedLogs.length;
  await c.create({ key: 'OK', value });
  await c.update('OK', { value: secretValue('ok2') });
  const read = await c.reveal('OK');
  expect(read.statusCode).toBe(200);
  expect(linesSince(mark)).not.toContain(value);
  expect(capturedLogs.length).toBeGreaterThan(mark);
});
