import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { createTestServer, type TestServer } from './server.js';

/**
 * The web console in a real browser (Debian's Chromium through playwright-core) against a
 * real listening server: one server and one browser profile for a test file, opened in
 * beforeAll and closed in afterAll. playwright-core has no web-first assertions (those are
 * @playwright/test's), so `eventually` polls a condition instead of sleeping.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Screenshots go to docs/ (committed, shown in the README) with UPDATE_SCREENSHOTS=1, else to a temp dir.
const SHOT_DIR = process.env.UPDATE_SCREENSHOTS === '1' ? join(import.meta.dirname, '../../docs') : undefined;

export interface ConsoleBrowser {
  server: TestServer;
  context: BrowserContext;
  /** A call to the API as an admin: status and JSON body. */
  api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A new page on /console, signed in with an admin token, the secrets list loaded. */
  signedIn(path?: string): Promise<Page>;
  shot(page: Page, name: string, fullPage?: boolean): Promise<void>;
}

export function useConsoleBrowser(env: Record<string, string> = {}): ConsoleBrowser {
  let userDataDir = '';
  const handle = {} as ConsoleBrowser;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}: install it with "apt-get update && apt-get install -y chromium" (.ci/run does), or set CHROMIUM_PATH`,
      );
    }
    const server = await createTestServer({ env });
    userDataDir = mkdtempSync(join(tmpdir(), 'console-e2e-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
    });
    context.setDefaultTimeout(15_000);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], {
      origin: new URL(server.url).origin,
    });
    Object.assign(handle, {
      server,
      context,
      async api(method: string, path: string, body?: unknown) {
        const res = await fetch(`${server.url}${path}`, {
          method,
          headers: {
            ...server.auth(),
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: body === undefined ? null : JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      },
      async signedIn(path = '/console') {
        const page = await context.newPage();
        await page.goto(`${server.url}${path}`);
        await page.getByLabel('Admin token (JWT)').fill(server.token('console-tester'));
        await page.getByRole('button', { name: 'Use token' }).click();
        await page.locator('main h1').first().waitFor();
        await page.getByLabel('Admin token (JWT)').waitFor({ state: 'detached' });
        return page;
      },
      async shot(page: Page, name: string, fullPage = false) {
        const png = await page.screenshot({ fullPage });
        expect(png.subarray(1, 4).toString()).toBe('PNG');
        writeFileSync(join(SHOT_DIR ?? userDataDir, `console-${name}.png`), png);
      },
    } satisfies ConsoleBrowser);
  });
  afterAll(async () => {
    await handle.context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await handle.server?.close();
  });
  return handle;
}

export const eventually = <T>(read: () => Promise<T>) =>
  expect.poll(read, { timeout: 15_000, interval: 100 });

/** Serious or critical axe-core violations on the page, as readable lines (expected: none). */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(bad, `axe violations on ${where}`).toEqual([]);
}
