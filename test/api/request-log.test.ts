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
  expect(lines.filter((l) => l.msg === 'request completed')).toHaveLength(1);
  expect(lines.find((l) => l.msg === 'request completed')).toMatchObject({ res: { statusCode: 401 } });
  expect(JSON.stringify(lines)).not.toContain('not.a.token');
});
