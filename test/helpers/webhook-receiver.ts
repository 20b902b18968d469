import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { expect } from 'vitest';
import type { api } from './http.js';

/**
 * A webhook receiver on loopback that verifies every request with the official
 * `standardwebhooks` package, exactly as a receiver would. `mode` makes it fail (503) or
 * hold requests until released; it records what it accepted and how many requests for one
 * webhook-id were in flight at once.
 */
/**
 * The settings of an app that delivers to a test receiver: plain http to loopback allowed,
 * and no poller (a test delivers with webhookDispatcher.deliverNow(), so nothing waits on time).
 */
export const deliversToReceiver = {
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_POLL_MS: '0',
};

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: { type: string; id: string; timestamp: string; data: Record<string, unknown> };
}

export interface Receiver {
  url: string;
  /** Verified deliveries, in arrival order (duplicates included). */
  received: Received[];
  /** Requests that failed verification with every secret. */
  rejected: number;
  /** Why (each secret's verification error). */
  errors: string[];
  /** Requests answered 503 while down. */
  refused: number;
  /** The most requests for one webhook-id in flight at the same time. */
  maxConcurrentPerId: number;
  mode: 'up' | 'down' | 'hold';
  /** Keys whose events are answered 503 (counted in `refused`) whatever the mode. */
  refuseKeys: Set<string>;
  /**
   * Keys whose events are held until `release()` whatever the mode; `refuseKeys` is read
   * after the release (so a held event can be made to fail).
   */
  holdKeys: Set<string>;
  /** Milliseconds to wait before answering (widens the window two senders could overlap in). */
  delayMs: number;
  /** Secrets any one of which must verify a request. */
  secrets: string[];
  /** Resolves once `n` deliveries were accepted. */
  waitFor(n: number): Promise<void>;
  /** Releases held requests (mode hold). */
  release(): void;
  /** Resolves once a request is being held. */
  held(): Promise<void>;
  /** Requests being held now. */
  holding(): number;
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      s += c;
    });
    req.on('end', () => resolve(s));
  });

/**
 * Subscribes `r` through the API (`admin`: an `api(...)` helper), checks the 201, and has
 * the receiver verify with the new subscription's signing secret. Returns what was created.
 */
export async function subscribeReceiver(
  admin: ReturnType<typeof api>,
  r: Receiver,
  body: Record<string, unknown> = {},
): Promise<{ id: string; secret: string }> {
  const res = await admin.req('POST', '/api/webhooks', { url: r.url, ...body });
  expect(res.statusCode, res.body).toBe(201);
  const created = res.json() as { id: string; secret: string };
  r.secrets.push(created.secret);
  return created;
}

export async function startReceiver(secrets: string[] = []): Promise<Receiver> {
  const inFlight = new Map<string, number>();
  const waiters: { n: number; resolve: () => void }[] = [];
  let releaseHeld: (() => void)[] = [];
  let heldWaiters: (() => void)[] = [];
  const r: Receiver = {
    url: '',
    received: [],
    rejected: 0,
    errors: [],
    refused: 0,
    maxConcurrentPerId: 0,
    mode: 'up',
    refuseKeys: new Set(),
    holdKeys: new Set(),
    delayMs: 0,
    secrets,
    waitFor: (n) =>
      new Promise((resolve) => {
        if (r.received.length >= n) resolve();
        else waiters.push({ n, resolve });
      }),
    release() {
      const list = releaseHeld;
      releaseHeld = [];
      for (const f of list) f();
    },
    holding: () => releaseHeld.length,
    held: () =>
      new Promise((resolve) => {
        if (releaseHeld.length > 0) resolve();
        else heldWaiters.push(resolve);
      }),
    // The test is over: connections still open (a held request, a sender's kept-alive
    // socket) are cut, so closing never waits on a peer.
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer(async (req, res) => {
    const body = await readBody(req);
    const id = String(req.headers['webhook-id']);
    inFlight.set(id, (inFlight.get(id) ?? 0) + 1);
    r.maxConcurrentPerId = Math.max(r.maxConcurrentPerId, inFlight.get(id)!);
    const hold = () =>
      new Promise<void>((resolve) => {
        releaseHeld.push(resolve);
        const list = heldWaiters;
        heldWaiters = [];
        for (const f of list) f();
      });
    try {
      const key = JSON.parse(body).data?.key;
      if (r.holdKeys.has(key)) await hold();
      if (r.mode === 'down' || r.refuseKeys.has(key)) {
        r.refused++;
        res.writeHead(503).end();
        return;
      }
      if (r.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, r.delayMs));
      if (r.mode === 'hold') await hold();
      const headers = {
        'webhook-id': id,
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      };
      const ok = r.secrets.some((s) => {
        try {
          new Webhook(s).verify(body, headers);
          return true;
        } catch (err) {
          r.errors.push(`${String(err)} ${JSON.stringify(headers)} ${body.slice(0, 80)}`);
          return false;
        }
      });
      if (!ok) {
        r.rejected++;
        res.writeHead(400).end();
        return;
      }
      r.received.push({
        id,
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        body: JSON.parse(body),
      });
      res.writeHead(204).end();
      for (const w of waiters.filter((w) => r.received.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    } finally {
      inFlight.set(id, inFlight.get(id)! - 1);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return r;
}
