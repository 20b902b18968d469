import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { ClientFetch, ClientResponse } from '../client/index.js';

/**
 * A `fetch` for the CLI's client over node:http(s). Node 20's own fetch (undici) compiles its
 * HTTP parser (WebAssembly) on the first request of every process, which costs each CLI run
 * more than the CLI itself (docs/benchmarks.md, "Figures behind design choices"). node:http's
 * parser is built in. Written here because the alternatives (node-fetch, undici's request)
 * either bring their own Request/Response classes or the same parser. Only what the client
 * sends is supported: a method, headers and an optional text body, one response read whole;
 * a redirect is an error. It answers with a plain object, not a WHATWG Response: Node's
 * Request/Headers/Response classes live in undici too, and touching any of them loads it
 * (a cost on each start: docs/benchmarks.md).
 */
export const httpFetch: ClientFetch = async (href, init) => {
  const url = new URL(href);
  const body = init.body === undefined ? undefined : Buffer.from(init.body);
  const headers: Record<string, string> = { ...init.headers };
  if (body) headers['content-length'] = String(body.length);
  const signal = init.signal;
  // node:https (and TLS with it) is loaded only for an https URL: it is most of the start-up
  // cost of a request to a plain-HTTP local server.
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  return new Promise<ClientResponse>((resolve, reject) => {
    const fail = (err: Error & { code?: string }) =>
      reject(
        Object.assign(new TypeError('fetch failed'), { cause: { code: err.code, message: err.message } }),
      );
    const req = send(url, { method: init.method, headers }, (res: IncomingMessage) => {
      const location = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && location) {
        // Not followed: a redirect (typically a proxy's http -> https) could carry the
        // credential elsewhere; the user is told the URL to use instead.
        res.resume();
        const to = new URL(location, url);
        // The base URL it points to: the same request path, under another origin or prefix.
        const base = to.pathname.endsWith(url.pathname)
          ? `${to.origin}${to.pathname.slice(0, to.pathname.length - url.pathname.length)}`
          : to.origin;
        reject(
          Object.assign(new TypeError('fetch failed'), {
            cause: {
              message: `it redirects (HTTP ${res.statusCode}) to ${base}: use that base URL instead (redirects are not followed, so the credential goes nowhere else)`,
            },
          }),
        );
        return;
      }
      const headersOf: ClientResponse['headers'] = {
        get: (name) => {
          const v = res.headers[name.toLowerCase()];
          return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
        },
        forEach: (cb) => {
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) for (const x of v) cb(x, k);
            else if (v !== undefined) cb(v, k);
          }
        },
      };
      // An event stream (GET /api/events) is handed over as it arrives, not read whole.
      if (res.statusCode === 200 && String(res.headers['content-type']).startsWith('text/event-stream')) {
        resolve({
          ok: true,
          status: 200,
          statusText: res.statusMessage ?? '',
          headers: headersOf,
          body: res,
          text: () => Promise.reject(new Error('an event stream is read through body, not text()')),
        });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        const status = res.statusCode ?? 502;
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          ok: status >= 200 && status < 300,
          status,
          statusText: res.statusMessage ?? '',
          headers: headersOf,
          text: async () => text,
        });
      });
    });
    req.on('error', fail);
    if (signal) {
      const abort = () => {
        const reason = signal.reason as Error | undefined;
        req.destroy();
        reject(reason ?? new Error('aborted'));
      };
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
      req.on('close', () => signal.removeEventListener('abort', abort));
    }
    req.end(body);
  });
};
