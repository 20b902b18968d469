import { describe, expect, it } from 'vitest';
import { createTestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';

const t = useTestApp();

const UUID = /^[0-9a-f-]{36}$/;

describe('operational endpoints', () => {
  it('GET /health: 200 {status: ok}', async () => {
    const res = await t.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /ready: 200 {status: ready}', async () => {
    const res = await t.app.inject({ url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
  });

  it('GET /openapi.json: the API document with every secrets route', async () => {
    const res = await t.app.inject({ url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/secrets', '/api/secrets/{key}']));
  });

  it('GET /docs: an HTML API reference', async () => {
    let res = await t.app.inject({ url: '/docs' });
    if (res.statusCode >= 300 && res.statusCode < 400)
      res = await t.app.inject({ url: String(res.headers.location) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toMatch(/<html/i);
  });
});

describe('headers', () => {
  it('echoes a well-formed x-request-id and generates one otherwise', async () => {
    const given = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'ci-run-42.step_3' } });
    expect(given.headers['x-request-id']).toBe('ci-run-42.step_3');
    const none = await t.app.inject({ url: '/health' });
    expect(none.headers['x-request-id']).toMatch(UUID);
    const hostile = await t.app.inject({
      url: '/health',
      headers: { 'x-request-id': 'bad id\u0000<script>' },
    });
    expect(hostile.headers['x-request-id']).toMatch(UUID);
    const long = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'a'.repeat(65) } });
    expect(long.headers['x-request-id']).toMatch(UUID);
  });

  it('every answer, success or error, is cache-control: no-store and carries a request id', async () => {
    const c = api(t);
    const answers = [
      await c.list(),
      await c.reveal('MISSING'),
      await t.app.inject({ url: '/api/secrets' }),
      await t.app.inject({ url: '/nope' }),
      await t.app.inject({ url: '/health' }),
    ];
    for (const res of answers) {
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-request-id']).toEqual(expect.any(String));
    }
  });
});

describe('database gone', () => {
  it('/ready answers 503 SERVICE_UNAVAILABLE with Retry-After once the database is closed; /health stays 200', async () => {
    const gone = await createTestApp();
    try {
      await gone.db.close();
      const res = await gone.app.inject({ url: '/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ error: 'SERVICE_UNAVAILABLE', statusCode: 503 });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect((await gone.app.inject({ url: '/health' })).statusCode).toBe(200);
      // A data request fails without internals in the body.
      const data = await api(gone).list();
      expect(data.statusCode).toBe(503);
      expect(Object.keys(data.json()).sort()).toEqual(['error', 'message', 'nextActions', 'statusCode']);
      expect(data.body).not.toMatch(/pglite|pool|stack|at /i);
    } finally {
      await gone.close();
    }
  });
});
