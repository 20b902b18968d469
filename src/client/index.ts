import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

/**
 * Typed client for the secrets API, generated from the committed openapi/openapi.json
 * (npm run client:generate writes ./schema.d.ts; a test fails when it drifts).
 * `api` is the raw openapi-fetch client with every path and body typed; the methods below
 * turn error bodies into SecretsApiError and network failures into SecretsUnreachableError.
 */

export type { components, paths };
export type SecretMetadata = components['schemas']['SecretMetadata'];
export type ErrorBody = components['schemas']['ErrorResponse'];
export type BatchEntry = components['schemas']['BatchSecretEntryInput'];
export type TrustPolicy = components['schemas']['TrustPolicy'];
export type TrustPolicyInput = components['schemas']['TrustPolicyRequest'];
export type Webhook = components['schemas']['Webhook'];
export type CreatedWebhook = components['schemas']['CreatedWebhook'];
export type WebhookInput = components['schemas']['CreateWebhookRequest'];
export type WebhookPatch = components['schemas']['UpdateWebhookRequest'];
export type WebhookDelivery = components['schemas']['WebhookDelivery'];

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

export interface SecretsClientOptions {
  /** e.g. http://127.0.0.1:7130 (no trailing /api). */
  baseUrl: string;
  /** An admin JWT, sent as Authorization: Bearer. */
  token?: string | undefined;
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
}

export function createSecretsClient(opts: SecretsClientOptions) {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const base = opts.baseUrl.replace(/\/+$/, '');
  const token = opts.token;
  const baseFetch = opts.fetch ?? globalThis.fetch;
  const api: Client<paths> = createClient<paths>({
    baseUrl: opts.baseUrl.replace(/\/+$/, ''),
    headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    fetch: async (req: Request) => {
      try {
        return await baseFetch(req, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why = cause?.code ?? cause?.message ?? (err as Error).message;
        throw new SecretsUnreachableError(
          `cannot reach ${opts.baseUrl}: ${explainNetworkError(why, opts.baseUrl)}`,
        );
      }
    },
  });

  async function unwrap<T>(
    p: Promise<{ data?: T; error?: unknown; response: Response }>,
  ): Promise<{ data: T; response: Response }> {
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

  return {
    api,

    async getSecret(key: string): Promise<string> {
      const { data } = await unwrap(api.GET('/api/secrets/{key}', { params: { path: { key } } }));
      return data.value;
    },

    /** Every page of the list (metadata only, never values). */
    async listSecrets(opts: { prefix?: string; active?: boolean } = {}): Promise<SecretMetadata[]> {
      const out: SecretMetadata[] = [];
      let cursor: string | undefined;
      do {
        const { data } = await unwrap(
          api.GET('/api/secrets', {
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
        await unwrap(api.POST('/api/secrets', { body: { key, value, ...flag } }));
        return 'created';
      } catch (err) {
        if (!(err instanceof SecretsApiError && err.status === 409)) throw err;
      }
      await unwrap(api.PUT('/api/secrets/{key}', { params: { path: { key } }, body: { value, ...flag } }));
      return 'updated';
    },

    async deleteSecret(key: string): Promise<void> {
      await unwrap(api.DELETE('/api/secrets/{key}', { params: { path: { key } } }));
    },

    /** Active, unexpired secrets as {KEY: value}, read by the server in one snapshot. */
    async exportSecrets(prefix?: string): Promise<Record<string, string>> {
      const { data } = await unwrap(
        api.GET('/api/secrets/export', {
          params: { query: { format: 'json', ...(prefix ? { prefix } : {}) } },
        }),
      );
      return data as Record<string, string>;
    },

    /** The dotenv text as the server quotes it. */
    async exportDotenv(prefix?: string): Promise<string> {
      const { data } = await unwrap(
        api.GET('/api/secrets/export', {
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
        await unwrap(api.POST('/api/secrets', { body: { key, generate, ...opts } }));
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
      const { data } = await unwrap(
        api.POST('/api/secrets/batch', { body: { secrets, dryRun: opts.dryRun ?? false } }),
      );
      return data;
    },

    /** Who the credential is. */
    async whoami() {
      const { data } = await unwrap(api.GET('/api/auth/whoami'));
      return data;
    },

    /**
     * The value only when it changed since `etag` (If-None-Match): undefined on 304.
     * For polling (secrets run --watch) without transferring the value each time.
     */
    async getIfChanged(key: string, etag?: string): Promise<{ value: string; etag: string } | undefined> {
      const { data, response } = await unwrap(
        api.GET('/api/secrets/{key}', {
          params: { path: { key }, header: etag ? { 'if-none-match': etag } : {} },
        }),
      );
      if (response.status === 304) return undefined;
      return { value: data.value, etag: response.headers.get('etag') ?? '' };
    },

    async render(template: string): Promise<string> {
      const { data } = await unwrap(api.POST('/api/secrets/render', { body: { template } }));
      return data.rendered;
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
        api.POST('/api/auth/token', {
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

    /** Workload-identity trust policies (admin only). */
    trusts: {
      async list(): Promise<TrustPolicy[]> {
        const { data } = await unwrap(api.GET('/api/auth/trusts'));
        return data.trusts;
      },
      async create(trust: TrustPolicyInput): Promise<TrustPolicy> {
        const { data } = await unwrap(api.POST('/api/auth/trusts', { body: trust }));
        return data;
      },
      async replace(name: string, trust: TrustPolicyInput): Promise<TrustPolicy> {
        const { data } = await unwrap(
          api.PUT('/api/auth/trusts/{name}', { params: { path: { name } }, body: trust }),
        );
        return data;
      },
      async remove(name: string): Promise<TrustPolicy> {
        const { data } = await unwrap(api.DELETE('/api/auth/trusts/{name}', { params: { path: { name } } }));
        return data;
      },
    },

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
      const res = await baseFetch(
        new Request(`${base}/api/events`, {
          headers: {
            accept: 'text/event-stream',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
          },
        }),
        opts.signal ? { signal: opts.signal } : {},
      );
      if (!res.ok || !res.body)
        await unwrap(Promise.resolve({ error: await res.json().catch(() => ({})), response: res }));
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
        throw new SecretsUnreachableError(`event stream from ${base} dropped: ${(err as Error).message}`);
      }
    },

    /** Webhook subscriptions (admin only; docs/events.md). */
    webhooks: {
      async list(): Promise<Webhook[]> {
        const { data } = await unwrap(api.GET('/api/webhooks'));
        return data.webhooks;
      },
      /** The answer holds the signing secret (whsec_...): the only time it is shown. */
      async create(input: WebhookInput): Promise<CreatedWebhook> {
        const { data } = await unwrap(api.POST('/api/webhooks', { body: input }));
        return data;
      },
      async update(id: string, patch: WebhookPatch): Promise<Webhook> {
        const { data } = await unwrap(
          api.PATCH('/api/webhooks/{id}', { params: { path: { id } }, body: patch }),
        );
        return data;
      },
      async remove(id: string): Promise<void> {
        await unwrap(api.DELETE('/api/webhooks/{id}', { params: { path: { id } } }));
      },
      async rotateSecret(id: string): Promise<{ secret: string; previousSecretRetiresAt: string }> {
        const { data } = await unwrap(
          api.POST('/api/webhooks/{id}/rotate-secret', { params: { path: { id } } }),
        );
        return data;
      },
      async deliveries(id: string): Promise<WebhookDelivery[]> {
        const { data } = await unwrap(api.GET('/api/webhooks/{id}/deliveries', { params: { path: { id } } }));
        return data.deliveries;
      },
      async redeliver(id: string, deliveryId: string): Promise<void> {
        await unwrap(
          api.POST('/api/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
            params: { path: { id, deliveryId } },
          }),
        );
      },
    },
  };
}

export type SecretsClient = ReturnType<typeof createSecretsClient>;
