import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/**
 * A `fetch` for the CLI's client over node:http(s). Node 20's own fetch (undici) compiles its
 * HTTP parser (WebAssembly) on the first request of every process: measured with farm-bench
 * it added about 250 ms to each CLI run, several times what the CLI itself costs. node:http's
 * parser is built in. Written here because the alternatives (node-fetch, undici's request)
 * either bring their own Request/Response classes, which the typed client (openapi-fetch)
 * does not use, or the same parser. Only what the client sends is supported: a method,
 * headers and an optional text body, one response read whole; a redirect is an error.
 */
export async function httpFetch(input: Request, init?: { signal?: AbortSignal }): Promise<Response> {
  const url = new URL(input.url);
  const body = input.body ? Buffer.from(await input.arrayBuffer()) : undefined;
  const headers: Record<string, string> = {};
  input.headers.forEach((v, k) => {
    headers[k] = v;
  });
  if (body) headers['content-length'] = String(body.length);
  const signal = init?.signal ?? input.signal;
  // node:https (and TLS with it) is loaded only for an https URL: it is most of the start-up
  // cost of a request to a plain-HTTP local server.
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  return new Promise<Response>((resolve, reject) => {
    const fail = (err: Error & { code?: string }) =>
      reject(
        Object.assign(new TypeError('fetch failed'), { cause: { code: err.code, message: err.message } }),
      );
    const req = send(url, { method: input.method, headers }, (res: IncomingMessage) => {
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
      const headersOf = () => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const x of v) out.append(k, x);
          else if (v !== undefined) out.set(k, v);
        }
        return out;
      };
      // An event stream (GET /api/events) is handed over as it arrives, not read whole.
      if (res.statusCode === 200 && String(res.headers['content-type']).startsWith('text/event-stream')) {
        resolve(
          new Response(Readable.toWeb(res) as ReadableStream, {
            status: 200,
            statusText: res.statusMessage ?? '',
            headers: headersOf(),
          }),
        );
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        const out = headersOf();
        const status = res.statusCode ?? 502;
        const nullBody = status === 204 || status === 304;
        resolve(
          new Response(nullBody ? null : Buffer.concat(chunks), {
            status,
            statusText: res.statusMessage ?? '',
            headers: out,
          }),
        );
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
}
