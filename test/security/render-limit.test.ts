import { afterAll, beforeAll, expect, it } from 'vitest';
import { secretValue, trackValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * Issue 11 item 1: render counts bytes as references resolve and refuses an amplifying
 * template (413 naming the limit) before building it; /health keeps answering while the
 * largest allowed renders run. Real HTTP (a listening server), both backends.
 */
const LIMIT = 1024 * 1024;
const VALUE_BYTES = 64 * 1024;
let t: TestServer;

beforeAll(async () => {
  // Four renders by one caller at once: above the default per-caller bulk limit (2).
  t = await createTestServer({ env: { MAX_RENDER_BYTES: String(LIMIT), BULK_IN_FLIGHT_PER_CALLER: '4' } });
  const prefix = secretValue('big');
  const big = trackValue(`${prefix}${'x'.repeat(VALUE_BYTES - prefix.length)}`);
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: t.auth(),
    payload: { key: 'BIG', value: big },
  });
  expect(res.statusCode).toBe(201);
});
afterAll(() => t?.close());

const renderBody = (refs: number) => JSON.stringify({ template: '{{Secrets.BIG}}\n'.repeat(refs) });
const render = (refs: number) =>
  fetch(`${t.url}/api/secrets/render`, {
    method: 'POST',
    headers: { ...t.auth(), 'content-type': 'application/json' },
    body: renderBody(refs),
  });

it('refuses a template that would render past MAX_RENDER_BYTES with 413 naming the limit', async () => {
  // 8,000 references to one 64 KiB secret: 524 MB before the cap.
  const res = await render(8000);
  expect(res.status).toBe(413);
  const body = (await res.json()) as { error: string; message: string };
  expect(body.error).toBe('PAYLOAD_TOO_LARGE');
  expect(body.message).toContain(`exceed ${LIMIT} bytes (MAX_RENDER_BYTES)`);
  // Just past the limit is refused too; just under it renders.
  const refsUnder = Math.floor(LIMIT / (VALUE_BYTES + 1));
  expect((await render(refsUnder + 1)).status).toBe(413);
  const ok = await render(refsUnder);
  expect(ok.status).toBe(200);
  const rendered = ((await ok.json()) as { rendered: string }).rendered;
  expect(Buffer.byteLength(rendered)).toBeLessThanOrEqual(LIMIT);
  expect(Buffer.byteLength(rendered)).toBe(refsUnder * (VALUE_BYTES + 1));
});

it('/health answers while the largest allowed renders are in flight', async () => {
  const refs = Math.floor(LIMIT / (VALUE_BYTES + 1));
  const order: string[] = [];
  // Four renders sent before /health. Their 1 MB bodies are not read until /health has
  // answered, so they are certainly still in flight then: the order is fixed by the test, not
  // by which response the scheduler happens to finish first.
  const renders = Array.from({ length: 4 }, () => render(refs));
  const health = await fetch(`${t.url}/health`);
  expect(health.status).toBe(200);
  await health.arrayBuffer();
  order.push('health');
  for (const [i, pending] of renders.entries()) {
    const r = await pending;
    expect(r.status).toBe(200);
    const rendered = ((await r.json()) as { rendered: string }).rendered;
    expect(Buffer.byteLength(rendered)).toBe(refs * (VALUE_BYTES + 1));
    order.push(`render${i}`);
  }
  expect(order).toEqual(['health', 'render0', 'render1', 'render2', 'render3']);
});
