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
