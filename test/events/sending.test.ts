import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';
import { deliversToReceiver, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * What the webhook sender (src/events/sender.ts) does with a receiver that misbehaves:
 * a redirect is the attempt's answer, never followed; an answer is read only up to a bound,
 * then the connection is dropped; a receiver that never answers is cut at the timeout.
 * Outcomes are read from the delivery log; nothing here measures a duration.
 */
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', ...deliversToReceiver },
  resetEachTest: true,
});

/** A bare server with a handler of the test's, noting requests and closed connections. */
interface Bare {
  url: string;
  requests: number;
  /** Resolves once every connection made to it so far has been closed. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

async function bare(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Bare> {
  let open = 0;
  let waiting: (() => void)[] = [];
  const b: Bare = {
    url: '',
    requests: 0,
    idle: () =>
      new Promise<void>((resolve) => {
        if (open === 0) resolve();
        else waiting.push(resolve);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    b.requests++;
    req.resume();
    req.on('end', () => handle(req, res));
  });
  server.on('connection', (socket) => {
    open++;
    socket.once('close', () => {
      open--;
      if (open > 0) return;
      const list = waiting;
      waiting = [];
      for (const f of list) f();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  b.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return b;
}

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function subscribe(app: TestApp, url: string) {
  const res = await api(app, 'alice').req('POST', '/api/webhooks', { url });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret: string };
}

async function oneRound(app: TestApp) {
  await app.app.webhookDispatcher.deliverNow();
  await app.app.webhookDispatcher.idle();
}

async function log(app: TestApp, id: string) {
  const res = await api(app, 'alice').req('GET', `/api/webhooks/${id}/deliveries`);
  expect(res.statusCode).toBe(200);
  return res.json().deliveries as {
    status: string;
    attempts: number;
    lastResponseStatus: number | null;
    lastError: string | null;
  }[];
}

describe('the webhook sender', () => {
  it('does not follow a redirect: the 3xx is the answer, and the target never sees the event', async () => {
    const target: Receiver = await startReceiver();
    servers.push(target);
    const redirecting = await bare((_req, res) => {
      res.writeHead(307, { location: target.url }).end();
    });
    servers.push(redirecting);
    const sub = await subscribe(t, redirecting.url);
    target.secrets.push(sub.secret);
    expect((await api(t, 'alice').create({ key: 'APP_R', value: secretValue() })).statusCode).toBe(201);
    await oneRound(t);
    expect(redirecting.requests).toBe(1);
    expect(target.received.length + target.rejected + target.refused).toBe(0);
    expect(await log(t, sub.id)).toMatchObject([
      { status: 'pending', attempts: 1, lastResponseStatus: 307, lastError: 'answered 307' },
    ]);
  });

  it('reads an answer only up to a bound, then drops the connection; the next delivery still goes', async () => {
    // 200, then a body that never ends: the sender must stop reading by itself.
    const endless = await bare((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 120);
      const more = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', more);
      more();
    });
    servers.push(endless);
    const sub = await subscribe(t, endless.url);
    expect((await api(t, 'alice').create({ key: 'APP_B', value: secretValue() })).statusCode).toBe(201);
    await oneRound(t);
    expect(endless.requests).toBe(1);
    await endless.idle();
    expect(await log(t, sub.id)).toMatchObject([
      { status: 'delivered', attempts: 1, lastResponseStatus: 200, lastError: null },
    ]);
    expect((await api(t, 'alice').update('APP_B', { value: secretValue() })).statusCode).toBe(200);
    await oneRound(t);
    expect(endless.requests).toBe(2);
    expect((await log(t, sub.id)).map((d) => d.status)).toEqual(['delivered', 'delivered']);
  });

  it('sends the Standard Webhooks headers with a JSON body', async () => {
    const seen: IncomingMessage['headers'][] = [];
    const plain = await bare((req, res) => {
      seen.push(req.headers);
      res.writeHead(204).end();
    });
    servers.push(plain);
    await subscribe(t, plain.url);
    expect((await api(t, 'alice').create({ key: 'APP_H', value: secretValue() })).statusCode).toBe(201);
    await oneRound(t);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'secrets-service-webhooks',
      'webhook-id': expect.any(String),
      'webhook-timestamp': expect.stringMatching(/^\d+$/),
      'webhook-signature': expect.stringMatching(/^v1,[A-Za-z0-9+/]+=*$/),
      'content-length': expect.stringMatching(/^\d+$/),
    });
  });

  describe('with a receiver that never answers', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await createTestApp({
        env: { AUDIT_SEAL_INTERVAL_MS: '0', ...deliversToReceiver, WEBHOOK_TIMEOUT_MS: '1000' },
      });
    });
    afterAll(async () => {
      await app?.close();
    });

    it('cuts the attempt at the timeout and drops its connection', async () => {
      const silent = await bare(() => {});
      servers.push(silent);
      const sub = await subscribe(app, silent.url);
      expect((await api(app, 'alice').create({ key: 'APP_T', value: secretValue() })).statusCode).toBe(201);
      await oneRound(app);
      expect(await log(app, sub.id)).toMatchObject([
        { status: 'pending', attempts: 1, lastResponseStatus: null, lastError: 'no answer within 1000 ms' },
      ]);
      // Sent and cut, or (on a machine slow enough to spend the whole second connecting)
      // never sent: either way no connection stays open.
      expect(silent.requests).toBeLessThanOrEqual(1);
      await silent.idle();
    });
  });
});
