import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, consoleRoutes } from '../../src/http/console.js';
import { CONSOLE_PAGES, CONSOLE_PAGES_WITH_ITEM } from '../../src/http/console-pages.js';
import { installErrorHandling } from '../../src/http/error-handler.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** How the API process serves the console's files (the browser suite is test/process/console.e2e.test.ts). */
describe('console static files', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves index.html at /console and /console/ and its hashed assets, each with the CSP', async () => {
    for (const url of ['/console', '/console/']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(res.headers['x-frame-options']).toBe('DENY');
    }
    const html = (await t.app.inject({ url: '/console' })).body;
    const css = /href="(\/console\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    const res = await t.app.inject({ url: css! });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/css/);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
  });

  it('answers every console page (and an item of those that open one) with index.html, so a reload lands on it', async () => {
    const index = (await t.app.inject({ url: '/console' })).body;
    const urls = CONSOLE_PAGES.flatMap((p) => [
      `/console/${p}`,
      ...(CONSOLE_PAGES_WITH_ITEM.includes(p) ? [`/console/${p}/SOME_ITEM?env=staging`] : []),
    ]);
    expect(urls).toEqual(
      expect.arrayContaining(['/console/environments', '/console/webhooks/SOME_ITEM?env=staging']),
    );
    for (const url of urls) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).toBe(index);
      expect(res.headers['content-security-policy'], url).toBe(CONSOLE_CSP);
    }
    // A page without items has no item path.
    expect((await t.app.inject({ url: '/console/keys/x' })).statusCode).toBe(404);
  });

  it('tells the sign-in page whether the username/password login exists', async () => {
    const res = await t.app.inject({ url: '/console/config.json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ login: false }); // no ROOT_ADMIN_* on this app
    const withLogin = await createTestApp({
      env: { ROOT_ADMIN_USERNAME: 'root', ROOT_ADMIN_PASSWORD: 'pw-static-test-1234' },
    });
    try {
      expect((await withLogin.app.inject({ url: '/console/config.json' })).json()).toEqual({ login: true });
    } finally {
      await withLogin.close();
    }
  });

  it('answers a missing file with the JSON 404 body, and never lists a directory', async () => {
    for (const url of ['/console/assets/nope.js', '/console/../package.json', '/console/nope/index.html']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json(), url).toMatchObject({ error: 'NOT_FOUND', statusCode: 404 });
    }
    const dir = await t.app.inject({ url: '/console/assets/' });
    expect(dir.statusCode).toBe(403);
    expect(dir.json()).toMatchObject({ statusCode: 403 });
    expect(dir.body).not.toMatch(/index-/);
  });

  it('says how to build the console when it has not been built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'console-unbuilt-'));
    const app = Fastify();
    installErrorHandling(app);
    await app.register(consoleRoutes, { root: empty });
    const res = await app.inject({ url: '/console' });
    await app.close();
    rmSync(empty, { recursive: true });
    expect(res.statusCode).toBe(503);
    // Like every 503 (src/errors.ts), it says when to come back.
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(res.json()).toMatchObject({
      error: 'SERVICE_UNAVAILABLE',
      message: 'The web console has not been built',
      nextActions: expect.stringContaining('npm run console:build'),
    });
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
  });
});
