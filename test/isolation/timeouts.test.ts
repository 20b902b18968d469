import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestServer } from '../helpers/server.js';

/**
 * Issue 21 finding 5: slow bodies are cut off. A real socket trickles a request in one byte
 * at a time; the server must answer 408 and close it once REQUEST_TIMEOUT_MS (or, for the
 * headers, HEADERS_TIMEOUT_MS) has passed, and close an idle keep-alive connection after
 * KEEP_ALIVE_TIMEOUT_MS. Each test waits for the server to close the socket (no sleeps); on
 * a server without the timeouts the socket stays open and the test times out.
 */
const t = useTestServer({
  env: { REQUEST_TIMEOUT_MS: '1000', HEADERS_TIMEOUT_MS: '600', KEEP_ALIVE_TIMEOUT_MS: '300' },
});

const sockets: Socket[] = [];
// A failed test leaves its socket open; the server must still close at the end of the file.
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

function open(): Promise<Socket> {
  const { hostname, port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port) }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

/** Writes `text` one byte per `everyMs` until the server closes; resolves with what it answered. */
function trickle(s: Socket, text: string, everyMs: number): Promise<string> {
  let received = '';
  let i = 0;
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    received += d;
  });
  s.on('error', () => {});
  const timer = setInterval(() => {
    if (s.writable && i < text.length) s.write(text[i++]!);
  }, everyMs);
  return new Promise((resolve) => {
    s.once('close', () => {
      clearInterval(timer);
      resolve(received);
    });
  });
}

describe('finding 5: every connection is bounded in time', { timeout: 20_000 }, () => {
  it('answers 408 and closes a body trickled in slower than REQUEST_TIMEOUT_MS (even to login)', async () => {
    const s = await open();
    s.write(
      'POST /api/auth/admin/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n',
    );
    const answer = await trickle(s, '{'.padEnd(4096, ' '), 50);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('answers 408 and closes headers trickled in slower than HEADERS_TIMEOUT_MS', async () => {
    const s = await open();
    const answer = await trickle(
      s,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(4000)}\r\n\r\n`,
      50,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT_MS', async () => {
    // The request goes in one write; then the connection sits idle until the server closes it.
    const s2 = await open();
    let got = '';
    s2.setEncoding('utf8');
    s2.on('data', (d: string) => {
      got += d;
    });
    s2.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    await new Promise<void>((resolve) => s2.once('close', () => resolve()));
    expect(got).toMatch(/^HTTP\/1\.1 200/);
    expect(got.toLowerCase()).toContain('keep-alive: timeout=');
  });
});
