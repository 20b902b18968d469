import { connect } from 'node:net';
import { expect, it } from 'vitest';
import { useTestServer } from '../helpers/server.js';

/**
 * Issue 21 finding 7: a body over the limit gets its 413 delivered to Node's fetch (undici),
 * not a reset while it is still sending. Real HTTP on a listening server, both backends.
 */
const t = useTestServer();

it.each([2, 4, 12])('answers a %i MB POST /api/secrets with a 413 that fetch receives', async (mb) => {
  const body = JSON.stringify({ key: 'TOO_BIG', value: 'x'.repeat(mb * 1024 * 1024) });
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`${t.url}/api/secrets`, {
      method: 'POST',
      headers: { ...t.auth(), 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('PAYLOAD_TOO_LARGE');
  }
});

it('answers 401 to a large unauthenticated body, delivered to fetch', async () => {
  const res = await fetch(`${t.url}/api/secrets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: 'NOPE', value: 'y'.repeat(3 * 1024 * 1024) }),
  });
  expect(res.status).toBe(401);
  await res.arrayBuffer();
});

/**
 * The reset itself, made deterministic: a raw client that keeps sending its whole body and
 * reads nothing until it has sent it (as a client busy uploading does), then reads. A server
 * that answers and closes while the body is still coming makes the client's kernel answer
 * the rest with a reset, which discards the unread answer: the client reads ECONNRESET, not
 * the 413. Answered after the body was read and discarded, the 413 is all there.
 */
it.each([
  ['too large', 4, { 'content-type': 'application/json' }, 413],
  ['unauthenticated', 3, { 'content-type': 'application/json', authorization: '' }, 401],
] as const)('a client that sends its whole %s body before reading gets the answer, not a reset', async (_what, mb, extra, status) => {
  const { hostname, port } = new URL(t.url);
  const size = mb * 1024 * 1024;
  const headers = { ...t.auth(), ...extra } as Record<string, string>;
  const head = [
    'POST /api/secrets HTTP/1.1',
    `host: ${hostname}:${port}`,
    `content-length: ${size}`,
    ...Object.entries(headers)
      .filter(([, v]) => v !== '')
      .map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port) });
    let got = '';
    s.pause();
    s.on('error', (err) => reject(err));
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    s.on('end', () => resolve(got));
    s.on('connect', async () => {
      s.write(head);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let sent = 0; sent < size; sent += chunk.length) {
        // Waits for the kernel to take each chunk, so the whole body is really sent first.
        if (!s.write(chunk.subarray(0, Math.min(chunk.length, size - sent))))
          await new Promise((r) => s.once('drain', r));
      }
      s.resume();
      s.end();
    });
  });
  expect(answer.split('\r\n')[0]).toBe(
    `HTTP/1.1 ${status} ${status === 413 ? 'Payload Too Large' : 'Unauthorized'}`,
  );
});
