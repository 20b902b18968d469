import { expect } from 'vitest';
import { UUID } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * The API's documented behaviour end to end (status, headers, bodies), written once against
 * a transport so the same assertions run through app.inject and over a real socket
 * (conformance.test.ts): what a socket adds (keep-alive, chunked bodies, Node's HTTP parser)
 * is then covered by the checks the in-process tests use, not by a copy of them.
 */
export interface Sent {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  /** Sent as is (a JSON text, or deliberately not JSON). */
  body?: string;
}
export interface Got {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | undefined>;
  body: string;
}
export type Transport = (r: Sent) => Promise<Got>;

const JSON_TYPE = /^application\/json; charset=utf-8$/;

/** What every answer carries: security headers, and a JSON body unless it has none (304). */
function expectCommon(r: Got, what: string) {
  expect(r.headers['x-content-type-options'], what).toBe('nosniff');
  expect(r.headers['x-frame-options'], what).toBe('DENY');
  if (r.status === 304) {
    expect(r.body, what).toBe('');
    return;
  }
  expect(r.headers['content-type'], what).toMatch(JSON_TYPE);
}
const json = (r: Got) => JSON.parse(r.body) as Record<string, unknown>;
const errorBody = (status: number, error: string, message: string | RegExp) => ({
  error,
  statusCode: status,
  message: typeof message === 'string' ? message : expect.stringMatching(message),
  nextActions: expect.any(String),
});

/** One pass over the API as an admin (`auth`), on keys starting with `prefix`. */
export async function conformancePass(send: Transport, auth: Record<string, string>, prefix: string) {
  const key = `${prefix}_KEY`;
  const url = `/api/secrets/${key}`;
  const jsonHeaders = { ...auth, 'content-type': 'application/json' };
  const call = async (what: string, r: Sent) => {
    const got = await send(r);
    expectCommon(got, what);
    return got;
  };
  const value = secretValue('conformance');

  const created = await call('create', {
    method: 'POST',
    url: '/api/secrets',
    headers: jsonHeaders,
    body: JSON.stringify({ key, value, description: 'conformance' }),
  });
  expect(created.status, created.body).toBe(201);
  expect(json(created)).toEqual({
    success: true,
    message: `Secret ${key} has been created successfully`,
    id: expect.stringMatching(UUID),
  });
  expect(created.body).not.toContain(value);

  const read = await call('read', { method: 'GET', url, headers: auth });
  expect(read.status, read.body).toBe(200);
  expect(json(read)).toEqual({ key, value });
  const etag = read.headers.etag;
  expect(etag).toMatch(/^"[0-9a-f-]+\.\d+"$/);

  const notModified = await call('if-none-match', {
    method: 'GET',
    url,
    headers: { ...auth, 'if-none-match': etag! },
  });
  expect(notModified.status).toBe(304);
  expect(notModified.headers.etag).toBe(etag);

  const next = secretValue('conformance');
  const updated = await call('update', {
    method: 'PUT',
    url,
    headers: { ...jsonHeaders, 'if-match': etag! },
    body: JSON.stringify({ value: next }),
  });
  expect(updated.status, updated.body).toBe(200);
  expect(json(updated)).toEqual({ success: true, message: `Secret ${key} has been updated successfully` });
  const etag2 = updated.headers.etag;
  expect(etag2).toMatch(/^"[0-9a-f-]+\.\d+"$/);
  expect(etag2).not.toBe(etag);

  const stale = await call('stale if-match', {
    method: 'PUT',
    url,
    headers: { ...jsonHeaders, 'if-match': etag! },
    body: JSON.stringify({ value: secretValue('conformance') }),
  });
  expect(stale.status, stale.body).toBe(412);
  expect(json(stale).error).toBe('PRECONDITION_FAILED');
  expect(stale.headers.etag).toBe(etag2);

  const listed = await call('list', { method: 'GET', url: `/api/secrets?prefix=${prefix}_`, headers: auth });
  expect(listed.status).toBe(200);
  const list = json(listed) as {
    secrets: { key: string; description: string; version: number }[];
    nextCursor: null;
  };
  expect(list.nextCursor).toBeNull();
  expect(list.secrets).toEqual([expect.objectContaining({ key, description: 'conformance', version: 2 })]);
  expect(listed.body).not.toContain(next);

  const missing = await call('missing', { method: 'GET', url: `/api/secrets/${prefix}_NONE`, headers: auth });
  expect(missing.status).toBe(404);
  expect(json(missing)).toEqual(errorBody(404, 'NOT_FOUND', `Secret not found: ${prefix}_NONE`));

  const anonymous = await call('no credentials', { method: 'GET', url });
  expect(anonymous.status).toBe(401);
  expect(json(anonymous)).toMatchObject({ error: 'AUTH_INVALID_CREDENTIALS', statusCode: 401 });

  const notJson = await call('not JSON', {
    method: 'POST',
    url: '/api/secrets',
    headers: jsonHeaders,
    body: `{"key": "${prefix}_BAD", "value": `,
  });
  expect(notJson.status).toBe(400);
  // The rest of a body the server could not parse may still be on its way: the connection ends.
  expect(notJson.headers.connection).toBe('close');
  expect(json(notJson)).toEqual(errorBody(400, 'INVALID_INPUT', 'Request body is not valid JSON'));

  const removed = await call('delete', { method: 'DELETE', url, headers: auth });
  expect(removed.status).toBe(200);
  expect(json(removed)).toEqual({ success: true, message: `Secret ${key} has been deleted successfully` });
  const gone = await call('read deleted', { method: 'GET', url, headers: auth });
  expect(gone.status).toBe(404);
  expect(json(gone).message).toBe(`Secret not found: ${key} is inactive`);
  // 11 requests; the caller may check how they travelled (one connection, chunked bodies).
  return 11;
}
