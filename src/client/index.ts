import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import type {
  BatchEntry,
  Environment,
  EnvironmentComparison,
  ErrorBody,
  SecretMetadata,
  WebhookDelivery,
} from './types.js';

/**
 * Typed client for the secrets API, generated from the committed openapi/openapi.json
 * (npm run client:generate writes ./schema.d.ts and ./types.ts; a test fails when either
 * drifts).
 * `api` is the raw openapi-fetch client with every path and body typed; the methods below
 * turn error bodies into SecretsApiError and network failures into SecretsUnreachableError.
 */

export type { components, paths };
// A named type per schema (SecretMetadata, Webhook, ...), generated with ./schema.d.ts.
export type * from './types.js';

/** The service answered with an error body ({error, message, statusCode, nextActions?}). */
export class SecretsApiError extends Error {
  override name = 'SecretsApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly nextActions?: string,
    /** Seconds, from Retry-After (429, 503). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** No HTTP answer at all: connection refused, DNS failure, TLS error, timeout. */
export class SecretsUnreachableError extends Error {
  override name = 'SecretsUnreachableError';
}

/**
 * What a network failure code means for someone who typed the URL: a TLS handshake against
 * a plain-HTTP server, or a port that is not an HTTP server, otherwise read as cryptic codes.
 */
export function explainNetworkError(code: string, baseUrl: string): string {
  const u = new URL(baseUrl);
  if (
    /^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST)$|^EPROTO$/.test(code) &&
    u.protocol === 'https:'
  ) {
    return `${code}: the server does not speak TLS there; if it is plain HTTP, use http://${u.host}${u.pathname.replace(/\/$/, '')}`;
  }
  if (/^(HPE_|UND_ERR_SOCKET$|ECONNRESET$)/.test(code) || code === 'socket hang up') {
    return `${code}: something answered on port ${u.port || (u.protocol === 'https:' ? 443 : 80)}, but not the secrets service over HTTP; check the port (the service's default is 7130)`;
  }
  if (code === 'ECONNREFUSED')
    return `${code}: nothing listens on ${u.host}; is the server running, and is this its port?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return `${code}: the host name ${u.hostname} does not resolve`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
    return `${code}: the server's TLS certificate is not trusted here; give its CA with NODE_EXTRA_CA_CERTS=/path/ca.pem`;
  }
  return code;
}

/** What the client's methods read of a response: a WHATWG `Response` has all of it. */
export interface ClientResponse {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null; forEach(cb: (value: string, name: string) => void): void };
  text(): Promise<string>;
  /** The body as it arrives: read by the event stream only (the runtime's fetch has it too). */
  body?: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null;
}

/** What the client's methods send: a URL string and a plain init. The runtime's `fetch` is one. */
export type ClientFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<ClientResponse>;

export interface SecretsClientOptions {
  /** e.g. http://127.0.0.1:7130 (no trailing /api). */
  baseUrl: string;
  /** An admin JWT, sent as Authorization: Bearer. */
  token?: string | undefined;
  /**
   * The transport (default: the runtime's `fetch`). The methods build no `Request`,
   * `Headers` or `Response` of their own: the light CLI passes node:http here and so never
   * loads Node's undici (a cost on every start: docs/benchmarks.md).
   */
  fetch?: ClientFetch | undefined;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  /**
   * The environment the secret methods address (default: `default`, the /api/secrets API).
   * Every environment has the same surface under /api/environments/{env}/secrets, so the
   * methods stay typed against /api/secrets and the path is moved on the way out.
   */
  environment?: string | undefined;
}

/** /api/secrets... as the same request in another environment (the default one is left alone). */
export function inEnvironment(url: string, environment: string | undefined): string {
  if (environment === undefined || environment === 'default') return url;
  const u = new URL(url);
  if (u.pathname === '/api/secrets' || u.pathname.startsWith('/api/secrets/'))
    u.pathname = `/api/environments/${encodeURIComponent(environment)}${u.pathname.slice('/api'.length)}`;
  return u.toString();
}

/** The JSON body of a response object from the schema (undefined where it has none, as a 204). */
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : undefined;
/** What a path's operation answers on success (200, 201 or 204), from the schema. */
type Answer<Op> = Op extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201 | 204>]> : never;
/** The JSON request body of a path's operation, from the schema. */
type BodyOf<Op> = Op extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;
/** The one path parameter of an item path: `name` of /api/auth/trusts/{name}. */
type ParamOf<P> = P extends `${string}{${infer K}}` ? K : never;

type Init = {
  params?: {
    path?: Record<string, string>;
    query?: Record<string, unknown>;
    header?: Record<string, string>;
  };
  body?: unknown;
  parseAs?: 'json' | 'text';
};

export function createSecretsClient(opts: SecretsClientOptions) {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const baseFetch: ClientFetch = opts.fetch ?? ((url, init) => globalThis.fetch(url, init));
  const auth: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};

  async function transport(url: string, init: Parameters<ClientFetch>[1]): Promise<ClientResponse> {
    try {
      // Another environment: the same request under /api/environments/{env}/secrets.
      return await baseFetch(inEnvironment(url, opts.environment), init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new SecretsUnreachableError(
        `cannot reach ${opts.baseUrl}: ${explainNetworkError(why, opts.baseUrl)}`,
      );
    }
  }

  /**
   * The methods' requests: the same typed calls as openapi-fetch's (`call.GET(path, init)`,
   * checked against the OpenAPI paths at compile time), sent as a plain URL and init through
   * `transport` and answered as openapi-fetch answers ({data} or {error}, and the response).
   * Written here because openapi-fetch builds a WHATWG Request and Headers for every call.
   */
  function send(method: string) {
    return async (path: string, init: Init = {}) => {
      const { params = {}, body, parseAs = 'json' } = init;
      const url = new URL(
        baseUrl +
          path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(params.path?.[name] ?? '')),
      );
      for (const [k, v] of Object.entries(params.query ?? {}))
        if (v !== undefined) url.searchParams.set(k, String(v));
      const headers: Record<string, string> = { ...auth, ...params.header };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await transport(url.href, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = response.status === 204 || response.status === 304 ? '' : await response.text();
      if (!response.ok) {
        let error: unknown = text;
        try {
          error = JSON.parse(text);
        } catch {
          // not JSON: the text as it came
        }
        return { error, response };
      }
      return { data: parseAs === 'text' ? text : text ? JSON.parse(text) : undefined, response };
    };
  }
  const call = {
    GET: send('GET') as unknown as Client<paths>['GET'],
    POST: send('POST') as unknown as Client<paths>['POST'],
    PUT: send('PUT') as unknown as Client<paths>['PUT'],
    DELETE: send('DELETE') as unknown as Client<paths>['DELETE'],
    PATCH: send('PATCH') as unknown as Client<paths>['PATCH'],
  };

  let raw: Client<paths> | undefined;
  /** openapi-fetch over the same transport, made on first use of `api`. */
  function rawClient(): Client<paths> {
    raw ??= createClient<paths>({
      baseUrl,
      headers: auth,
      fetch: async (req: Request) => {
        const res = await transport(req.url, {
          method: req.method,
          headers: Object.fromEntries(req.headers),
          ...(req.body ? { body: await req.text() } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (res instanceof Response) return res;
        const headers = new Headers();
        res.headers.forEach((v, k) => {
          headers.append(k, v);
        });
        const nullBody = res.status === 204 || res.status === 304;
        return new Response(nullBody ? null : await res.text(), {
          status: res.status,
          statusText: res.statusText,
          headers,
        });
      },
    });
    return raw;
  }

  async function unwrap<T>(
    p: Promise<{ data?: T; error?: unknown; response: ClientResponse }>,
  ): Promise<{ data: T; response: ClientResponse }> {
    const { data, error, response } = await p;
    if (response.ok || response.status === 304) return { data: data as T, response };
    const body = (error ?? {}) as Partial<ErrorBody>;
    const retry = Number(response.headers.get('retry-after'));
    throw new SecretsApiError(
      response.status,
      typeof body.error === 'string' ? body.error : `HTTP_${response.status}`,
      typeof body.message === 'string' ? body.message : `HTTP ${response.status} ${response.statusText}`,
      typeof body.nextActions === 'string' ? body.nextActions : undefined,
      Number.isFinite(retry) && retry > 0 ? retry : undefined,
    );
  }

  /** The body of a successful answer (else the SecretsApiError unwrap throws). */
  const dataOf = async <T>(p: Promise<{ data?: T; error?: unknown; response: ClientResponse }>): Promise<T> =>
    (await unwrap(p)).data;

  /**
   * A collection at `C` and its items at `I` (one path parameter), each method typed from the
   * schema's operation at that path: list (its `field`), create (POST C), put and patch (I, a
   * body), remove (DELETE I). A path without the operation makes the method uncallable.
   */
  function collection<C extends keyof paths, I extends keyof paths, F extends keyof Answer<paths[C]['get']>>(
    collectionPath: C,
    itemPath: I,
    field: F,
  ) {
    const item = (id: string) => ({ params: { path: { [itemPath.match(/\{([^}]+)\}/)?.[1] ?? '']: id } } });
    type Item = ParamOf<I> extends never ? never : string;
    return {
      async list(): Promise<Answer<paths[C]['get']>[F]> {
        return (await dataOf(send('GET')(collectionPath)))[field];
      },
      async create(body: BodyOf<paths[C]['post']>): Promise<Answer<paths[C]['post']>> {
        return dataOf(send('POST')(collectionPath, { body }));
      },
      async put(id: Item, body: BodyOf<paths[I]['put']>): Promise<Answer<paths[I]['put']>> {
        return dataOf(send('PUT')(itemPath, { ...item(id), body }));
      },
      async patch(id: Item, body: BodyOf<paths[I]['patch']>): Promise<Answer<paths[I]['patch']>> {
        return dataOf(send('PATCH')(itemPath, { ...item(id), body }));
      },
      async remove(id: Item): Promise<Answer<paths[I]['delete']>> {
        return dataOf(send('DELETE')(itemPath, item(id)));
      },
    };
  }
  const trusts = collection('/api/auth/trusts', '/api/auth/trusts/{name}', 'trusts');
  const webhooks = collection('/api/webhooks', '/api/webhooks/{id}', 'webhooks');

  return {
    /** The raw openapi-fetch client: every path and body typed. */
    get api(): Client<paths> {
      return rawClient();
    },

    async getSecret(key: string): Promise<string> {
      return (await dataOf(call.GET('/api/secrets/{key}', { params: { path: { key } } }))).value;
    },

    /** Every page of the list (metadata only, never values). */
    async listSecrets(opts: { prefix?: string; active?: boolean } = {}): Promise<SecretMetadata[]> {
      const out: SecretMetadata[] = [];
      let cursor: string | undefined;
      do {
        const { data } = await unwrap(
          call.GET('/api/secrets', {
            params: {
              query: {
                ...(opts.prefix ? { prefix: opts.prefix } : {}),
                ...(opts.active === undefined ? {} : { active: opts.active ? 'true' : 'false' }),
                ...(cursor ? { cursor } : {}),
              },
            },
          }),
        );
        out.push(...data.secrets);
        cursor = data.nextCursor ?? undefined;
      } while (cursor);
      return out;
    },

    /**
     * Creates the secret, or stores a new value when it already exists. `writeOnly`: create it
     * write-only (its value is never returned again), or make an existing one so (admin only,
     * unless it already is).
     */
    async setSecret(
      key: string,
      value: string,
      opts: { writeOnly?: boolean } = {},
    ): Promise<'created' | 'updated'> {
      const flag = opts.writeOnly ? { isWriteOnly: true } : {};
      try {
        await unwrap(call.POST('/api/secrets', { body: { key, value, ...flag } }));
        return 'created';
      } catch (err) {
        if (!(err instanceof SecretsApiError && err.status === 409)) throw err;
      }
      await unwrap(call.PUT('/api/secrets/{key}', { params: { path: { key } }, body: { value, ...flag } }));
      return 'updated';
    },

    async deleteSecret(key: string): Promise<void> {
      await unwrap(call.DELETE('/api/secrets/{key}', { params: { path: { key } } }));
    },

    /** Active, unexpired secrets as {KEY: value}, read by the server in one snapshot. */
    async exportSecrets(prefix?: string): Promise<Record<string, string>> {
      const { data } = await unwrap(
        call.GET('/api/secrets/export', {
          params: { query: { format: 'json', ...(prefix ? { prefix } : {}) } },
        }),
      );
      return data as Record<string, string>;
    },

    /** The dotenv text as the server quotes it. */
    async exportDotenv(prefix?: string): Promise<string> {
      const { data } = await unwrap(
        call.GET('/api/secrets/export', {
          params: { query: { format: 'dotenv', ...(prefix ? { prefix } : {}) } },
          parseAs: 'text',
        }),
      );
      return (data as string | undefined) ?? ''; // openapi-fetch gives undefined for an empty body
    },

    /**
     * Creates KEY with a server-generated value (never returned) unless it exists:
     * 'created', or 'exists' when an active secret already has the key.
     */
    async ensureGenerated(
      key: string,
      generate: { length?: number; alphabet?: 'base64url' | 'hex' | 'alnum' | 'ascii' } = {},
      opts: { description?: string; isWriteOnly?: boolean } = {},
    ): Promise<'created' | 'exists'> {
      try {
        await unwrap(call.POST('/api/secrets', { body: { key, generate, ...opts } }));
        return 'created';
      } catch (err) {
        if (err instanceof SecretsApiError && err.status === 409) return 'exists';
        throw err;
      }
    },

    /** Creates or updates many secrets in one transaction (POST /api/secrets/batch). */
    async batch(
      secrets: BatchEntry[],
      opts: { dryRun?: boolean } = {},
    ): Promise<{ dryRun: boolean; results: { key: string; status: 'created' | 'updated' | 'unchanged' }[] }> {
      return dataOf(call.POST('/api/secrets/batch', { body: { secrets, dryRun: opts.dryRun ?? false } }));
    },

    /** Who the credential is. */
    async whoami() {
      return dataOf(call.GET('/api/auth/whoami'));
    },

    /**
     * The value only when it changed since `etag` (If-None-Match): undefined on 304.
     * For polling (secrets run --watch) without transferring the value each time.
     */
    async getIfChanged(key: string, etag?: string): Promise<{ value: string; etag: string } | undefined> {
      const { data, response } = await unwrap(
        call.GET('/api/secrets/{key}', {
          params: { path: { key }, header: etag ? { 'if-none-match': etag } : {} },
        }),
      );
      if (response.status === 304) return undefined;
      return { value: data.value, etag: response.headers.get('etag') ?? '' };
    },

    async render(template: string): Promise<string> {
      return (await dataOf(call.POST('/api/secrets/render', { body: { template } }))).rendered;
    },

    /**
     * RFC 8693 token exchange: trades a platform's OIDC ID token (GitHub Actions, GitLab CI,
     * Kubernetes) for a short-lived workload credential. Needs no credential of its own.
     */
    async exchangeIdToken(
      idToken: string,
      opts: { trust?: string | undefined; scope?: string | undefined } = {},
    ): Promise<{ accessToken: string; expiresIn: number; scope: string }> {
      const { data } = await unwrap(
        call.POST('/api/auth/token', {
          body: {
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: idToken,
            subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
            ...(opts.trust ? { trust: opts.trust } : {}),
            ...(opts.scope ? { scope: opts.scope } : {}),
          },
        }),
      );
      return { accessToken: data.access_token, expiresIn: data.expires_in, scope: data.scope };
    },

    /** Environments (changes are admin only; an access key lists those it covers). */
    environments: {
      async list(): Promise<Environment[]> {
        const out: Environment[] = [];
        let cursor: string | undefined;
        do {
          const { data } = await unwrap(
            call.GET('/api/environments', { params: { query: cursor ? { cursor } : {} } }),
          );
          out.push(...data.environments);
          cursor = data.nextCursor ?? undefined;
        } while (cursor);
        return out;
      },
      async create(name: string, description?: string): Promise<Environment> {
        return dataOf(
          call.POST('/api/environments', { body: { name, ...(description ? { description } : {}) } }),
        );
      },
      async remove(name: string): Promise<void> {
        await unwrap(call.DELETE('/api/environments/{env}', { params: { path: { env: name } } }));
      },
      /**
       * Copies the keys' values from `from` to `to` as one batch, compare-and-set on the target
       * (targetEtag: the ETag seen there, from compare, or null for "absent"). All or nothing.
       */
      async promote(from: string, to: string, secrets: { key: string; targetEtag: string | null }[]) {
        return dataOf(
          call.POST('/api/environments/{env}/promote/{other}', {
            params: { path: { env: from, other: to } },
            body: { secrets },
          }),
        );
      },
      /** Keys only in a, only in b, equal or different: never values. */
      async compare(a: string, b: string, opts: { prefix?: string } = {}): Promise<EnvironmentComparison> {
        return dataOf(
          call.GET('/api/environments/{env}/compare/{other}', {
            params: { path: { env: a, other: b }, query: opts.prefix ? { prefix: opts.prefix } : {} },
          }),
        );
      },
    },

    /** Workload-identity trust policies (admin only): replace is a PUT of the whole policy. */
    trusts: { list: trusts.list, create: trusts.create, replace: trusts.put, remove: trusts.remove },

    /**
     * The live change events (GET /api/events, Server-Sent Events) the credential may see,
     * from `lastEventId` (else from now), until `signal` aborts or the connection drops (the
     * iteration then ends; resume with the last id seen). Throws SecretsApiError when refused.
     */
    async *events(
      opts: {
        lastEventId?: string | undefined;
        signal?: AbortSignal;
        /** Called once the stream is open, with its start position (an id to resume from). */
        onOpen?: (position: string) => void;
      } = {},
    ): AsyncGenerator<{
      id: string;
      type: string;
      data: { type: string; id: string; timestamp: string; data: Record<string, unknown> };
    }> {
      const res = await transport(`${baseUrl}/api/events`, {
        method: 'GET',
        headers: {
          ...auth,
          accept: 'text/event-stream',
          ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
        },
        signal: opts.signal ?? new AbortController().signal,
      });
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        let error: unknown = {};
        try {
          error = JSON.parse(text);
        } catch {
          // not JSON: the status alone
        }
        await unwrap(Promise.resolve({ error, response: res }));
      }
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const f: Record<string, string> = {};
            for (const line of block.split('\n')) {
              const at = line.indexOf(': ');
              if (at > 0) f[line.slice(0, at)] = line.slice(at + 2);
            }
            if (f.id && f.event && f.data) yield { id: f.id, type: f.event, data: JSON.parse(f.data) };
            else if (f.id) opts.onOpen?.(f.id);
          }
        }
      } catch (err) {
        if (opts.signal?.aborted) return;
        throw new SecretsUnreachableError(`event stream from ${baseUrl} dropped: ${(err as Error).message}`);
      }
    },

    /** Webhook subscriptions (admin only; docs/events.md). */
    webhooks: {
      list: webhooks.list,
      /** The answer holds the signing secret (whsec_...): the only time it is shown. */
      create: webhooks.create,
      update: webhooks.patch,
      /** The answer's `{success: true}` says nothing the status did not: resolves to nothing. */
      async remove(id: string): Promise<void> {
        await webhooks.remove(id);
      },
      async rotateSecret(id: string): Promise<{ secret: string; previousSecretRetiresAt: string }> {
        return dataOf(call.POST('/api/webhooks/{id}/rotate-secret', { params: { path: { id } } }));
      },
      async deliveries(id: string): Promise<WebhookDelivery[]> {
        return (await dataOf(call.GET('/api/webhooks/{id}/deliveries', { params: { path: { id } } })))
          .deliveries;
      },
      async redeliver(id: string, deliveryId: string): Promise<void> {
        await unwrap(
          call.POST('/api/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
            params: { path: { id, deliveryId } },
          }),
        );
      },
    },
  };
}

export type SecretsClient = ReturnType<typeof createSecretsClient>;
