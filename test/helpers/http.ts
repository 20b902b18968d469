import type { InjectOptions } from 'fastify';
import type { TestApp } from './app.js';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

/**
 * The request helper every test file uses: thin calls over app.inject, so every call goes
 * through the real HTTP layer, signed in as an admin `sub` unless the call's own headers
 * say otherwise (an Authorization or x-api-key header of the test's choosing).
 * Usable at module level: it reads the app only when a request is sent.
 */
export function api(t: TestApp, sub = 'test-admin') {
  const send = (o: InjectOptions) =>
    t.app.inject({ ...o, headers: { ...t.auth(sub), ...(o.headers ?? {}) } } as InjectOptions);
  const path = (key: string) => `/api/secrets/${encodeURIComponent(key)}`;
  return {
    send,
    /** Any route: method, URL, an optional JSON body and extra headers. */
    req: (method: Method, url: string, payload?: object, headers: Record<string, string> = {}) =>
      send({ method, url, headers, ...(payload ? { payload } : {}) }),
    create: (body: unknown) => send({ method: 'POST', url: '/api/secrets', payload: body as object }),
    reveal: (key: string) => send({ method: 'GET', url: path(key) }),
    update: (key: string, body: unknown) => send({ method: 'PUT', url: path(key), payload: body as object }),
    remove: (key: string) => send({ method: 'DELETE', url: path(key) }),
    list: (query: Record<string, string | number | boolean> = {}) =>
      send({
        method: 'GET',
        url: '/api/secrets',
        query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])),
      }),
  };
}

/** Row counts of both data tables, to prove a rejected request stored nothing. */
export async function counts(t: TestApp): Promise<{ secrets: number; versions: number }> {
  const rows = await t.db.query<{ secrets: number; versions: number }>(
    `SELECT (SELECT count(*)::int FROM secrets) AS secrets, (SELECT count(*)::int FROM secret_versions) AS versions`,
  );
  return rows[0]!;
}

/** The secrets row as stored (plain SQL), for before/after comparisons. */
export async function rowOf(t: TestApp, key: string) {
  const rows = await t.db.query<Record<string, unknown>>('SELECT * FROM secrets WHERE key = $1', [key]);
  return rows[0];
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
