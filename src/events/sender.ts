import type { Agent, Dispatcher } from 'undici';
import { type DestinationRules, guardedLookup, refusedLiteral } from './destination.js';

/**
 * The webhook POST, on undici's `Agent` (one pool of kept-alive connections per origin)
 * driven through `dispatch` with a handler of our own: no response stream, headers object
 * or promise chain per request, the answer's bytes counted and dropped. Measured against
 * node:http's request and Agent for the same deliveries: about half the client CPU per
 * delivery (docs/benchmarks.md, "The sending side").
 *
 * undici is loaded on the first delivery, not at start: importing it takes 150-270 ms and
 * about 20 MB, which an instance without subscriptions (or the embedded start-up) does
 * not pay.
 *
 * What it guarantees, as the node:http version did:
 * - **Connections only to checked addresses.** Every new connection resolves its name
 *   through `guardedLookup` (undici hands `connect` options to net/tls.connect), which
 *   refuses loopback, private, link-local and metadata answers (DNS rebinding); a literal
 *   IP address, which connects without a lookup, is checked here before anything is sent.
 *   A kept-alive connection is only ever one that was made to a checked address.
 * - **No redirects.** undici's `dispatch` never follows one: a 3xx is the attempt's answer.
 * - **Bounded in time:** the whole attempt (waiting for a connection, connecting, sending,
 *   the answer) is cut at `timeoutMs`; a request still queued then is never sent.
 * - **Bounded in bytes:** at most MAX_RESPONSE_BYTES of the answer are read (then the
 *   connection is dropped); only the status counts, the body is discarded unbuffered.
 */

/** Bytes of a receiver's answer read at most (only its status matters). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface Outcome {
  status: number | null;
  error: string | null;
}

/** A destination URL as the sender uses it, parsed and checked once per URL string. */
interface Target {
  origin: string;
  path: string;
  /** Why nothing is sent there (a refused literal address, http not allowed), or null. */
  refused: string | null;
}

class TimedOut extends Error {}
class TooLong extends Error {}

/** One attempt: settles once, with the first of answer, error or timeout. */
class Attempt implements Dispatcher.DispatchHandler {
  private status: number | null = null;
  private read = 0;
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly resolve: (o: Outcome) => void,
    private readonly timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.timeout(), timeoutMs);
  }

  private finish(status: number | null, error: string | null) {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve({ status, error });
  }

  private timeout() {
    this.finish(null, `no answer within ${this.timeoutMs} ms`);
    // In flight: the connection is dropped. Still queued: refused in onRequestStart.
    this.controller?.abort(new TimedOut());
  }

  onRequestStart(controller: Dispatcher.DispatchController) {
    this.controller = controller;
    if (this.settled) controller.abort(new TimedOut());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number) {
    this.status = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer) {
    this.read += chunk.length;
    if (this.read > MAX_RESPONSE_BYTES) {
      // The status is known; the rest of the answer is not read (the connection goes).
      this.finish(this.status, null);
      controller.abort(new TooLong());
    }
  }

  onResponseEnd() {
    this.finish(this.status, null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error) {
    this.finish(null, (err as NodeJS.ErrnoException).code ?? err.message);
  }
}

export interface Sender {
  /** One POST of `body` with `headers` (flat name, value list), never rejecting. */
  post(url: string, body: string | Buffer, headers: string[]): Promise<Outcome>;
  /** Closes the kept-alive connections (a later post opens new ones). */
  close(): Promise<void>;
}

/**
 * A sender with at most `connections` connections per origin. Its agent is made on first
 * use and again after `close`.
 */
export function createSender(rules: DestinationRules, timeoutMs: number, connections: number): Sender {
  let agent: Agent | undefined;
  const targets = new Map<string, Target>();

  function target(raw: string): Target {
    let t = targets.get(raw);
    if (t) return t;
    const url = new URL(raw);
    t = {
      origin: url.origin,
      path: url.pathname + url.search,
      refused:
        refusedLiteral(url, rules) ??
        (url.protocol === 'http:' && !rules.allowHttp ? 'http is not allowed (WEBHOOK_ALLOW_HTTP)' : null),
    };
    // Forget destinations no longer sent to (changed, deleted): the map stays small.
    if (targets.size > 1000) targets.clear();
    targets.set(raw, t);
    return t;
  }

  let undici: Promise<typeof import('undici')> | undefined;

  async function newAgent(): Promise<Agent> {
    undici ??= import('undici');
    const { Agent } = await undici;
    agent ??= new Agent({
      connections,
      connect: { lookup: guardedLookup(rules) as never, timeout: timeoutMs },
      // Backstops: the attempt's own timer cuts the whole exchange at timeoutMs.
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    return agent;
  }

  function send(a: Agent, t: Target, body: string | Buffer, headers: string[]): Promise<Outcome> {
    return new Promise((resolve) => {
      const attempt = new Attempt(resolve, timeoutMs);
      try {
        a.dispatch({ origin: t.origin, path: t.path, method: 'POST', headers, body }, attempt);
      } catch (err) {
        attempt.onResponseError(null as never, err as Error);
      }
    });
  }

  return {
    post(url, body, headers) {
      const t = target(url);
      if (t.refused) return Promise.resolve({ status: null, error: t.refused });
      if (agent) return send(agent, t, body, headers);
      return newAgent().then((a) => send(a, t, body, headers));
    },
    async close() {
      const a = agent;
      agent = undefined;
      await a?.close();
    },
  };
}
