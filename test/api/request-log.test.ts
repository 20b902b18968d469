import { expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';

// One access line per request (bench/ showed logging as the largest per-request cost after
// the sockets): it must still say who asked for what and how it ended, and never carry a value.
const t = useTestApp();

interface LogLine {
  reqId?: string;
  msg?: string;
  responseTime?: unknown;
}
const linesFor = (reqId: string) =>
  capturedLogs.map((l) => JSON.parse(l) as LogLine).filter((l) => l.reqId === reqId);

it('writes exactly one access line per request, with method, url, status and time', async () => {
  const value = secretValue();
  await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'LOG_ONE', value },
  });
  const r = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/LOG_ONE',
    headers: { ...t.auth(), 'x-request-id': 'log-test-1' },
  });
  expect(r.statusCode).toBe(200);
  const lines = linesFor('log-test-1');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    msg: 'request completed',
    req: { method: 'GET', url: '/api/secrets/LOG_ONE' },
    res: { statusCode: 200 },
  });
  expect(typeof lines[0]?.responseTime).toBe('number');
  expect(JSON.stringify(lines)).not.toContain(value);
});

it('logs refused requests too, without the credentials', async () => {
  const r = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/LOG_ONE',
    headers: { authorization: 'Bearer not.a.token', 'x-request-id': 'log-test-2' },
  });
  expect(r.statusCode).toBe(401);
  const lines = linesFor('log-test-2');
  // One line, which carries the refusal's error code (no second "request rejected" line).
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    msg: 'request completed',
    res: { statusCode: 401 },
    rejected: r.json().error,
  });
  expect(JSON.stringify(lines)).not.toContain('not.a.token');
});

it("logs the query parameters the route's schema declares (?version=2), a pasted token by name only", async () => {
  const c = t.app;
  const created = await c.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'LOG_Q', value: secretValue() },
  });
  expect(created.statusCode).toBe(201);
  const updated = await c.inject({
    method: 'PUT',
    url: '/api/secrets/LOG_Q',
    headers: t.auth(),
    payload: { value: secretValue() },
  });
  expect(updated.statusCode).toBe(200);
  const r = await c.inject({
    method: 'GET',
    url: '/api/secrets/LOG_Q?version=2&access_token=pasted-tok-1',
    headers: { ...t.auth(), 'x-request-id': 'log-test-3' },
  });
  expect(r.statusCode).toBe(200);
  const list = await c.inject({
    method: 'GET',
    url: '/api/secrets?limit=5&prefix=LOG_&token=pasted-tok-2',
    headers: { ...t.auth(), 'x-request-id': 'log-test-4' },
  });
  expect(list.statusCode).toBe(200);
  expect(linesFor('log-test-3')[0]).toMatchObject({
    req: { url: '/api/secrets/LOG_Q?version=2&access_token=[redacted]' },
  });
  expect(linesFor('log-test-4')[0]).toMatchObject({
    req: { url: '/api/secrets?limit=5&prefix=LOG_&token=[redacted]' },
  });
  expect(capturedLogs.join('\n')).not.toMatch(/pasted-tok/);
});
