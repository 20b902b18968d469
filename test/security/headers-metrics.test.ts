import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMetricsApp } from '../../src/http/metrics.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * Issue 11 item 13: security headers on every response, /docs (Swagger UI) still loading
 * under the CSP, and METRICS_PORT moving /metrics to its own listener.
 */
const cspOf = (h: Record<string, unknown>) => {
  const map = new Map<string, string[]>();
  for (const d of String(h['content-security-policy'] ?? '').split(';')) {
    const [name, ...values] = d.trim().split(/\s+/);
    if (name) map.set(name, values);
  }
  return map;
};

describe('security headers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t?.close());

  it('nosniff, a restrictive CSP and frame protection on API responses, errors and 404s', async () => {
    const responses = await Promise.all([
      t.app.inject({ url: '/health' }),
      t.app.inject({ url: '/api/secrets', headers: t.auth() }),
      t.app.inject({ url: '/api/secrets' }), // 401
      t.app.inject({ url: '/nowhere' }), // 404
      t.app.inject({ url: '/metrics' }),
    ]);
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 401, 404, 200]);
    for (const r of responses) {
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['x-frame-options']).toBe('DENY');
      const csp = cspOf(r.headers);
      expect(csp.get('default-src')).toEqual(["'self'"]);
      expect(csp.get('script-src')).toEqual(["'self'"]);
      expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
      expect(csp.get('object-src')).toEqual(["'none'"]);
    }
  });

  it('/docs loads under the CSP: every script and stylesheet it names is same-origin and served', async () => {
    let res = await t.app.inject({ url: '/docs' });
    for (let i = 0; i < 3 && res.statusCode >= 300 && res.statusCode < 400; i++) {
      res = await t.app.inject({ url: new URL(String(res.headers.location), 'http://x/docs/').pathname });
    }
    expect(res.statusCode).toBe(200);
    const html = res.body;
    const csp = cspOf(res.headers);
    expect(csp.get('script-src')).not.toContain("'unsafe-inline'");
    // No inline script: every <script> has a src (the CSP allows no inline code).
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/src="/);
      expect(body?.trim()).toBe('');
    }
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(assets.some((a) => a.endsWith('swagger-ui-bundle.js'))).toBe(true);
    for (const a of assets) {
      // Relative to /docs: same origin, which 'self' allows.
      expect(a).not.toMatch(/^(https?:)?\/\//);
      const url = new URL(a, 'http://x/docs/').pathname;
      const asset = await t.app.inject({ url });
      expect(asset.statusCode, url).toBe(200);
      expect(asset.headers['x-content-type-options']).toBe('nosniff');
    }
    // The initializer loads the document from the same origin (connect-src 'self').
    const init = await t.app.inject({ url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    expect(init.body).toContain("url: resolveUrl('./json')");
    expect(init.body).toContain('validatorUrl: null'); // no badge image from another origin
    expect((await t.app.inject({ url: '/docs/json' })).statusCode).toBe(200);
  });
});

describe('METRICS_PORT', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { METRICS_PORT: '0' } });
  });
  afterAll(() => t?.close());

  it('serves /metrics on its own listener only', async () => {
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/metrics' })).statusCode).toBe(404);
    const m = buildMetricsApp(t.app);
    try {
      const res = await m.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('http_requests_total{method="GET",route="/health",status_code="200"} 1');
    } finally {
      await m.close();
    }
  });
});
