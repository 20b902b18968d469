/**
 * The console's only way to the API: same origin, JSON, the token as a Bearer header (never
 * in a URL). Every failure becomes an ApiError carrying the body's message and nextActions,
 * which the pages show as they are. A 401 signs the person out with the server's message.
 */

import type { components } from '../../src/client/schema';
import { DEFAULT_ENVIRONMENT } from '../../src/environment-names';

/**
 * The API's types come from the generated client schema (src/client/schema.d.ts, from
 * openapi/openapi.json, from the routes' zod schemas): one declaration, so the console
 * cannot drift from what the service sends. Type-only imports: nothing reaches the bundle.
 */
export type Schemas = components['schemas'];
export type SecretMeta = Schemas['SecretMetadata'];
export type VersionMeta = Schemas['SecretVersion'];
export type AccessKey = Schemas['AccessKey'];
export type AuditEntry = Schemas['AuditEntry'];
export type TrustPolicy = Schemas['TrustPolicy'];
/** An error body as it may arrive (a proxy's or a network failure's may lack fields). */
export type ErrorBody = Partial<Schemas['ErrorResponse']>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly etag: string | null = null,
  ) {
    super(body.message ?? `Request failed with status ${status}`);
    this.name = 'ApiError';
  }
  get nextActions(): string | undefined {
    return this.body.nextActions;
  }
}

const TOKEN_KEY = 'secrets-console-token';

/**
 * The token lives in sessionStorage: it survives a reload of this tab, is gone when the tab
 * closes, and is never sent anywhere but in the Authorization header of same-origin calls.
 */
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

type Unauthorized = (message: string) => void;
let onUnauthorized: Unauthorized = () => {};
export const setUnauthorizedHandler = (fn: Unauthorized) => {
  onUnauthorized = fn;
};

export interface Result<T> {
  body: T;
  etag: string | null;
}

export async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; ifMatch?: string | null; auth?: boolean; signOutOn401?: boolean } = {},
): Promise<Result<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = session.token;
  if (opts.auth !== false && token) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.ifMatch) headers['if-match'] = opts.ifMatch;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: opts.body === undefined ? null : JSON.stringify(opts.body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, {
      error: 'NETWORK',
      message: 'The service could not be reached',
      nextActions: 'Check that the service is running, then retry',
    });
  }
  const etag = res.headers.get('etag');
  let body: unknown = null;
  const text = await res.text();
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text.slice(0, 300) };
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, (body ?? {}) as ErrorBody, etag);
    if (res.status === 401 && opts.auth !== false && opts.signOutOn401 !== false) {
      session.clear();
      onUnauthorized(err.message);
    }
    throw err;
  }
  return { body: body as T, etag };
}

export const q = (params: Record<string, string | undefined | null>): string => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') s.set(k, v);
  const str = s.toString();
  return str ? `?${str}` : '';
};

export const enc = encodeURIComponent;

/**
 * Where an environment's secrets are: the default environment is the InsForge API
 * (/api/secrets), every other one the same routes under /api/environments/ENV/secrets.
 */
export const secretsBase = (env: string): string =>
  env === DEFAULT_ENVIRONMENT ? '/api/secrets' : `/api/environments/${enc(env)}/secrets`;

/** Finds one secret's metadata by exact key (the list API filters by prefix). */
export async function findSecret(base: string, key: string): Promise<SecretMeta | null> {
  const found = await listAll<SecretMeta, 'secrets'>(base, 'secrets', { prefix: key });
  return found.find((s) => s.key === key) ?? null;
}

/** Every item of a paged list (environments: few; one key's prefix matches), following nextCursor. */
export async function listAll<T, F extends string>(
  path: string,
  field: F,
  params: Record<string, string> = {},
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const { body } = await request<Record<F, T[]> & { nextCursor: string | null }>(
      'GET',
      `${path}${q({ ...params, limit: '1000', cursor })}`,
    );
    out.push(...body[field]);
    if (!body.nextCursor) return out;
    cursor = body.nextCursor;
  }
}
