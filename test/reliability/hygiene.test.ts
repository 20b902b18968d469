import { afterAll, beforeAll, expect, it } from 'vitest';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';
import { expectNoEcho, forbid, scanAuditLog, scanLogs } from './hygiene.js';
import { report } from './mode.js';

/**
 * Log and error hygiene over a whole session that walks every route and every error path
 * a value or credential can travel through (bad JSON quoting the body, wrong types,
 * oversize values, failed logins, tampered rows, tokens in the wrong place). Every log
 * line is captured at trace level; no value, password or token may appear in any line
 * or in any response body except the one GET that returns the value.
 * Not covered on purpose: a value the caller puts where a key, prefix or field name goes;
 * keys are identifiers, logged in URLs and echoed in messages by design.
 */

const PASSWORD = 'pw_hygiene_correct_horse_battery';
let t: TestApp;
let auth: { authorization: string };
const figures = { requests: 0, logLines: 0, needles: 0, auditRows: 0 };

beforeAll(async () => {
  t = await createTestApp({
    env: { ROOT_ADMIN_USERNAME: 'root', ROOT_ADMIN_PASSWORD: PASSWORD, MAX_VALUE_BYTES: '64' },
  });
  forbid(PASSWORD);
  auth = { authorization: `Bearer ${forbid(t.token('hygiene'))}` };
});
afterAll(async () => {
  report('hygiene', backend, figures);
  await t?.close();
});

async function send(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  opts: { payload?: unknown; raw?: string; headers?: Record<string, string> } = {},
) {
  const res = await t.app.inject({
    method,
    url,
    headers: {
      ...auth,
      ...(opts.raw !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    ...(opts.raw !== undefined
      ? { payload: opts.raw }
      : opts.payload !== undefined
        ? { payload: opts.payload as object }
        : {}),
  });
  figures.requests++;
  return res;
}

it('no value, password or token reaches a log line or an error body over a whole session', async () => {
  const v = secretValue('hyg');
  const big = secretValue('big').repeat(4);
  const wrongPw = forbid('pw_hygiene_wrong_guess_12345');
  const leaks = [v, big, wrongPw];
  const checks: Array<Awaited<ReturnType<typeof send>>> = [];

  checks.push(await send('POST', '/api/secrets', { payload: { key: 'HYG', value: v, description: 'd' } }));
  const got = await send('GET', '/api/secrets/HYG');
  expect(got.json().value).toBe(v); // the one place the value may appear
  checks.push(await send('GET', '/api/secrets'));
  checks.push(await send('POST', '/api/secrets', { payload: { key: 'HYG', value: v } })); // 409
  checks.push(await send('POST', '/api/secrets', { payload: { key: 'bad key', value: v } }));
  checks.push(await send('POST', '/api/secrets', { payload: { key: 'HYG2', value: big } })); // 413
  checks.push(await send('PUT', '/api/secrets/HYG', { payload: { value: big } })); // 413
  checks.push(await send('POST', '/api/secrets', { raw: `{"key":"HYG3","value":"${v}"` })); // truncated JSON
  checks.push(await send('POST', '/api/secrets', { raw: `{"key":"HYG3","value":"${v}",}` })); // trailing comma
  checks.push(await send('POST', '/api/secrets', { raw: `{"key":"HYG3","value":"${v}\\x"}` })); // bad escape
  checks.push(await send('POST', '/api/secrets', { payload: { key: 'HYG3', value: [v] } }));
  checks.push(await send('PUT', '/api/secrets/HYG', { payload: { value: v, isActive: v } }));
  checks.push(await send('PUT', '/api/secrets/NOPE', { payload: { value: v } }));
  checks.push(
    await send('POST', '/api/secrets', {
      raw: JSON.stringify({ key: 'HYG4', value: v }),
      headers: { 'content-type': 'text/plain' },
    }),
  );
  // Credentials in the wrong places.
  const token = auth.authorization.slice(7);
  checks.push(await send('GET', `/api/secrets?access_token=${token}`, { headers: { authorization: '' } }));
  checks.push(await send('GET', '/api/secrets', { headers: { authorization: `bearer ${token}` } }));
  checks.push(await send('GET', '/api/secrets', { headers: { authorization: `Bearer ${token}x` } }));
  checks.push(
    await send('GET', '/api/secrets', { headers: { authorization: '', cookie: `session=${token}` } }),
  );
  // Logins: wrong and right passwords, malformed bodies.
  checks.push(
    await send('POST', '/api/auth/admin/sessions', { payload: { username: 'root', password: wrongPw } }),
  );
  checks.push(
    await send('POST', '/api/auth/admin/sessions', { raw: `{"username":"root","password":"${wrongPw}"` }),
  );
  checks.push(
    await send('POST', '/api/auth/admin/sessions', { payload: { username: 'root', password: [wrongPw] } }),
  );
  const login = await send('POST', '/api/auth/admin/sessions', {
    payload: { username: 'root', password: PASSWORD },
  });
  expect(login.statusCode).toBe(200);
  forbid(login.json().accessToken);
  // Access keys: created (the token is shown once), used in both headers, out of scope,
  // outside its patterns, flipped, revoked: none of it may leave the token in a log or audit row.
  const mk = await send('POST', '/api/access-keys', {
    payload: { name: 'hyg-key', scopes: ['secrets:read', 'secrets:write'], keys: ['HYG*'] },
  });
  expect(mk.statusCode).toBe(201);
  const ak = forbid(mk.json().token as string);
  const flipped = forbid(`${ak.slice(0, -1)}${ak.endsWith('0') ? '1' : '0'}`);
  const asKey = (h: Record<string, string>) => ({ headers: { authorization: '', ...h } });
  const byKey = await send('GET', '/api/secrets/HYG', asKey({ 'x-api-key': ak }));
  expect(byKey.json().value).toBe(v);
  checks.push(
    await send('PUT', '/api/secrets/HYG', { payload: { value: v }, ...asKey({ 'x-api-key': ak }) }),
  );
  checks.push(await send('GET', '/api/secrets', asKey({ authorization: `Bearer ${ak}` }))); // 403 scope
  checks.push(await send('DELETE', '/api/secrets/HYG', asKey({ 'x-api-key': ak }))); // 403 scope
  checks.push(
    await send('POST', '/api/secrets', {
      payload: { key: 'OTHER', value: v },
      ...asKey({ 'x-api-key': ak }),
    }),
  );
  checks.push(await send('GET', '/api/secrets/HYG', asKey({ 'x-api-key': flipped })));
  checks.push(
    await send('GET', '/api/secrets/HYG', asKey({ 'x-api-key': ak, authorization: `Bearer ${ak}` })),
  );
  checks.push(await send('GET', '/api/access-keys', asKey({ 'x-api-key': ak }))); // 403 admin only
  expect((await send('DELETE', `/api/access-keys/${mk.json().id}`)).statusCode).toBe(200);
  checks.push(await send('GET', '/api/secrets/HYG', asKey({ 'x-api-key': ak }))); // 401 revoked
  // If-Match with a stale and a garbage tag: 412 and 400-class refusals carry no value.
  checks.push(
    await send('PUT', '/api/secrets/HYG', { payload: { value: v }, headers: { 'if-match': '"stale.1"' } }),
  );
  checks.push(await send('DELETE', '/api/secrets/HYG', { headers: { 'if-match': `W/"${v}"` } }));
  // A tampered row: the integrity failure is logged, the value is not.
  await t.db.query("UPDATE secret_versions SET tag = decode('00000000000000000000000000000000', 'hex')");
  checks.push(await send('GET', '/api/secrets/HYG'));
  expect(checks.at(-1)!.statusCode).toBe(500);

  for (const res of checks) expectNoEcho(res.body, leaks);
  expect(checks.filter((r) => r.statusCode >= 400).length).toBeGreaterThanOrEqual(27);
  // The audit log recorded this whole session (refusals included): no value, password or token in any column.
  const audit = await scanAuditLog(t.db, leaks);
  expect(audit.rows).toBeGreaterThan(20);
  figures.auditRows = audit.rows;
  figures.logLines = capturedLogs.length;
  figures.needles = leaks.length + 3;
  expect(capturedLogs.length).toBeGreaterThan(checks.length);
  scanLogs();
});
