import type { BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { BROWSING_ACTIONS } from '../../console/src/audit-actions.js';
import { CONSOLE_CSP } from '../../src/http/console.js';
import { eventually, expectAccessible, useConsoleBrowser } from '../helpers/console-browser.js';
import { secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * The web console in a real browser (Debian's Chromium through playwright-core) against a
 * real listening server on PGlite (test/helpers/console-browser.ts). Runs in the process
 * project only (vitest.config.ts): the console is the same whatever the backend. Each test
 * opens its own page and makes its own secrets, so none depends on another's order.
 */
const ADMIN = { username: 'root', password: 'console-e2e-password-1234' };
const b = useConsoleBrowser({ ROOT_ADMIN_USERNAME: ADMIN.username, ROOT_ADMIN_PASSWORD: ADMIN.password });

let server: TestServer;
let context: BrowserContext;
let origin: string;
const requested: string[] = [];

beforeAll(() => {
  ({ server, context } = b);
  origin = new URL(server.url).origin;
  context.on('request', (r) => requested.push(r.url()));
});

const api = (method: string, path: string, body?: unknown) => b.api(method, path, body);
const shot = (page: Page, name: string, fullPage = false) => b.shot(page, name, fullPage);

const uniqueKey = (label: string) => `E2E_${label}_${Math.random().toString(36).slice(2, 8).toUpperCase()}`;

async function openConsole(): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${server.url}/console`);
  return page;
}

async function signInWithToken(page: Page): Promise<void> {
  await page.getByLabel('Admin token (JWT)').fill(server.token('console-tester'));
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByRole('heading', { level: 1, name: 'Secrets', exact: true }).waitFor();
  // The first page of the list has loaded (its request used the token just given).
  await page.locator('.loading').waitFor({ state: 'detached' });
}

async function openSecret(page: Page, key: string): Promise<void> {
  await page.getByLabel('Key prefix').fill(key);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('button', { name: `Open ${key}` }).click();
  await page.getByRole('heading', { level: 2, name: key }).waitFor();
}

// Generous: a browser on a shared 2-core machine; axe over a whole page takes seconds.
describe('web console', { timeout: 240_000 }, () => {
  it('is served with its own strict CSP and no inline script', async () => {
    const res = await fetch(`${server.url}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).not.toContain('unsafe-inline');
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html).toMatch(/<script type="module" crossorigin src="\/console\/assets\/[^"]+\.js"><\/script>/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    const js = await fetch(`${server.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    // The API keeps its own headers: the console's policy is scoped to /console.
    const health = await fetch(`${server.url}/health`);
    expect(health.headers.get('content-security-policy')).not.toBe(CONSOLE_CSP);
  });

  it('signs in with the admin login, refuses a wrong password, signs out, and returns to sign-in on a 401', async () => {
    const page = await openConsole();
    await page.getByRole('heading', { level: 1, name: 'Secrets console' }).waitFor();
    await expectAccessible(page, 'sign-in');
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await eventually(() => page.getByRole('alert').textContent()).toContain('Invalid username or password');
    await eventually(() => page.getByRole('alert').textContent()).toContain('What to do:');

    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Secrets', exact: true }).waitFor();
    expect(page.url()).toBe(`${server.url}/console`);
    const stored = await page.evaluate<string | null>("sessionStorage.getItem('secrets-console-token')");
    expect(stored).toMatch(/^ey/);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You signed out.').waitFor();
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);

    // A token the server no longer accepts (expired, re-keyed): the next call sends the person back.
    await signInWithToken(page);
    await page.evaluate("sessionStorage.setItem('secrets-console-token', 'not.a.valid-token')");
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByText(/Your session ended: .*Sign in again\./).waitFor();
    await page.getByLabel('Admin token (JWT)').waitFor();
    await page.close();
  });

  it('creates, searches, reveals, copies and hides a secret', async () => {
    const page = await openConsole();
    await signInWithToken(page);
    const key = uniqueKey('CREATE');
    const value = secretValue('console');
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill(key);
    await page.getByLabel('Value', { exact: true }).fill(value);
    await page.getByLabel('Description').fill('made in the browser');
    await page.getByRole('button', { name: 'Create secret' }).click();
    await page.getByText(`Secret ${key} has been created successfully`).first().waitFor();

    await page.getByLabel('Key prefix').fill(key.slice(0, 10));
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.getByRole('row', { name: new RegExp(key) });
    await eventually(() => row.textContent()).toContain('made in the browser');
    await eventually(() => row.textContent()).toContain('Active');
    await page.getByLabel('Key prefix').fill('NO_SUCH_PREFIX_XYZ');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No secrets match these filters.').waitFor();

    await openSecret(page, key);
    expect(await page.content()).not.toContain(value);
    await page.getByRole('button', { name: 'Reveal value' }).click();
    await eventually(() => page.getByLabel(`Value of ${key}`).textContent()).toBe(value);
    await page.getByRole('button', { name: 'Copy value' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(value);
    await page.getByRole('button', { name: 'Hide value' }).click();
    await eventually(() => page.getByLabel(`Value of ${key}`).count()).toBe(0);
    expect(await page.content()).not.toContain(value);
    expect(page.url()).not.toContain(value);

    // "Generate value": the server either creates it (never showing the value) or says why not.
    const generated = uniqueKey('GEN');
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill(generated);
    await page.getByLabel('Generate a random value on the server').check();
    await page.getByLabel('Length').fill('40');
    await page.getByRole('button', { name: 'Create secret' }).click();
    const created = page.getByText(`Secret ${generated} has been created successfully`).first();
    const refused = page.locator('#create-h ~ .error .error-message');
    await created.or(refused).waitFor();
    const exists = (await api('GET', `/api/secrets?prefix=${generated}`)).body.secrets as unknown[];
    if (exists.length === 0) await eventually(() => refused.textContent()).toMatch(/\S/);
    else await created.waitFor();
    await page.close();
  });

  it('a write-only secret: created from the form, a lock badge, no reveal or copy, "Set a new value"', async () => {
    const page = await openConsole();
    await signInWithToken(page);
    const key = uniqueKey('WO');
    const value = secretValue('console_wo');
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill(key);
    await page.getByLabel('Value', { exact: true }).fill(value);
    await page.getByLabel(/^Write-only/).check();
    await page.getByRole('button', { name: 'Create secret' }).click();
    await page.getByText(`Secret ${key} has been created successfully`).first().waitFor();

    await page.getByLabel('Key prefix').fill(key);
    await page.getByRole('button', { name: 'Search' }).click();
    await eventually(() => page.getByRole('row', { name: new RegExp(key) }).textContent()).toContain(
      'Write-only',
    );
    await openSecret(page, key);
    await page.getByRole('button', { name: 'Set a new value' }).waitFor();
    expect(await page.getByRole('button', { name: 'Reveal value' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Copy value' }).count()).toBe(0);
    const next = secretValue('console_wo2');
    await page.getByLabel('New value', { exact: true }).fill(next);
    await page.getByRole('button', { name: 'Set a new value' }).click();
    await page.getByText(`Secret ${key} has been updated successfully`).first().waitFor();
    const [meta] = (await api('GET', `/api/secrets?prefix=${key}`)).body.secrets as {
      version: number;
      isWriteOnly: boolean;
    }[];
    expect(meta).toMatchObject({ version: 2, isWriteOnly: true });
    expect(await page.content()).not.toContain(value);
    expect(await page.content()).not.toContain(next);
    await page.close();
  });

  it('after saving a new value, the revealed value and Copy value are never the old one', async () => {
    const key = uniqueKey('STALE');
    const before = secretValue('before');
    expect((await api('POST', '/api/secrets', { key, value: before })).status).toBe(201);
    const page = await openConsole();
    await signInWithToken(page);
    await openSecret(page, key);
    await page.getByRole('button', { name: 'Reveal value' }).click();
    await eventually(() => page.getByLabel(`Value of ${key}`).textContent()).toBe(before);

    const after = secretValue('after');
    await page.getByText('Edit value or details').click();
    await page.getByLabel('New value', { exact: false }).fill(after);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText(`Secret ${key} has been updated successfully`).first().waitFor();
    await eventually(() => page.locator('.meta').textContent()).toContain('Version2');
    // Said once, in the open panel (the list above it said it a second time).
    expect(await page.getByText(`Secret ${key} has been updated successfully`).count()).toBe(1);
    // The old value is gone from the page; revealing again shows (and copies) the new one.
    await eventually(() => page.getByLabel(`Value of ${key}`).count()).toBe(0);
    expect(await page.content()).not.toContain(before);
    await page.getByRole('button', { name: 'Reveal value' }).click();
    await eventually(() => page.getByLabel(`Value of ${key}`).textContent()).toBe(after);
    await page.getByRole('button', { name: 'Copy value' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(after);
    await page.close();
  });

  it('has real URLs: an opened secret and the audit filters survive reload, back and a pasted link', async () => {
    const key = uniqueKey('URL');
    expect((await api('POST', '/api/secrets', { key, value: secretValue() })).status).toBe(201);
    expect((await api('GET', `/api/secrets/${key}`)).status).toBe(200);
    const page = await openConsole();
    await signInWithToken(page);
    await openSecret(page, key);
    expect(page.url()).toBe(`${server.url}/console/secrets/${key}`);
    await page.reload();
    await page.getByRole('heading', { level: 2, name: key }).waitFor();
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    expect(page.url()).toBe(`${server.url}/console/audit`);
    await page.goBack();
    await page.getByRole('heading', { level: 2, name: key }).waitFor();
    await page.getByRole('button', { name: 'Close' }).click();
    await eventually(async () => page.url()).toBe(`${server.url}/console/secrets`);

    // Audit filters are in the URL; a pasted link shows the same rows, with the fields filled in.
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Secret key').fill(key);
    await page.getByRole('button', { name: 'Filter' }).click();
    await eventually(async () => page.url()).toBe(`${server.url}/console/audit?key=${key}`);
    // A new tab has no session (the token is in this tab's sessionStorage): sign in there first.
    const linked = await context.newPage();
    await linked.goto(`${server.url}/console/audit?key=${key}`);
    await linked.getByLabel('Admin token (JWT)').fill(server.token('console-tester'));
    await linked.getByRole('button', { name: 'Use token' }).click();
    await linked.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    // The same rows as the API's answer for that filter without the listing entries, which
    // the view hides by default (browsing in the console added some).
    const entries = (
      await api('GET', `/api/audit?key=${key}&excludeAction=${BROWSING_ACTIONS.join(',')}&limit=50`)
    ).body.entries as unknown[];
    expect(entries.length).toBeGreaterThanOrEqual(2);
    await eventually(() => linked.locator('tbody tr').count()).toBeGreaterThanOrEqual(entries.length);
    for (const row of await linked.locator('tbody tr').all()) expect(await row.textContent()).toContain(key);
    expect(await linked.getByLabel('Secret key').inputValue()).toBe(key);
    await linked.close();
    // A console URL fetched directly (a reload, a pasted link) is the console page, with its CSP.
    const res = await fetch(`${server.url}/console/secrets/${key}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    await page.close();
  });

  it('masks a typed value (with a show toggle) and checks the key with the API rule before sending', async () => {
    const page = await openConsole();
    await signInWithToken(page);
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') posts.push(r.url());
    });
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    const value = page.getByLabel('Value', { exact: true });
    await value.fill(secretValue('typed'));
    // Runs in the page; the test's tsconfig has no DOM types, so the one call is typed here.
    type Styles = { getComputedStyle(e: unknown): { getPropertyValue(p: string): string } };
    const masking = () =>
      value.evaluate((el) =>
        (globalThis as unknown as Styles).getComputedStyle(el).getPropertyValue('-webkit-text-security'),
      );
    expect(await masking()).toBe('disc');
    const toggle = page.getByRole('button', { name: 'Show what I typed' });
    await toggle.click();
    expect(await masking()).toBe('none');
    expect(await page.getByRole('button', { name: 'Hide what I typed' }).getAttribute('aria-pressed')).toBe(
      'true',
    );

    await page.getByLabel('Key', { exact: true }).fill('stripe-api-key');
    await page.getByRole('button', { name: 'Create secret' }).click();
    await eventually(() => page.locator('#create-h ~ .error .error-message').textContent()).toContain(
      'Invalid key format. Use uppercase letters, numbers, and underscores only',
    );
    expect(posts).toEqual([]); // refused in the form: nothing was sent
    await page.close();
  });

  it('offers the username and password form only when the server has a login', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}/console`);
    await page.getByLabel('Username').waitFor(); // this server sets ROOT_ADMIN_*
    expect(await (await fetch(`${server.url}/console/config.json`)).json()).toEqual({ login: true });
    // A server without ROOT_ADMIN_*: its config.json says so (test/console/static.test.ts).
    await page.route('**/console/config.json', (r) => r.fulfill({ json: { login: false } }));
    await page.reload();
    await page.getByRole('heading', { level: 2, name: 'Sign in with an admin token' }).waitFor();
    expect(await page.getByLabel('Username').count()).toBe(0);
    expect(await page.getByText('npm run -s token -- --sub NAME').count()).toBe(1);
    await expectAccessible(page, 'sign-in without login');
    await page.close();
  });

  it('shows what changed when a concurrent edit wins (412) and saves after a reload', async () => {
    const key = uniqueKey('EDIT');
    expect(
      (await api('POST', '/api/secrets', { key, value: secretValue(), description: 'one' })).status,
    ).toBe(201);
    const page = await openConsole();
    await signInWithToken(page);
    await openSecret(page, key);
    await page.getByText('Edit value or details').click();
    await page.getByLabel('Description').last().fill('mine');

    // Someone else changes the secret after the console read it.
    const theirs = secretValue('theirs');
    expect((await api('PUT', `/api/secrets/${key}`, { description: 'theirs', value: theirs })).status).toBe(
      200,
    );

    await page.getByRole('button', { name: 'Save changes' }).click();
    const conflict = page.locator('.conflict');
    await page.getByText('Error 412').waitFor();
    await eventually(() => conflict.textContent()).toContain('description: one → theirs');
    await eventually(() => conflict.textContent()).toContain('value: version 1 → 2');
    expect((await api('GET', `/api/secrets?prefix=${key}`)).body.secrets).toMatchObject([
      { description: 'theirs' },
    ]);

    await page.getByRole('button', { name: 'Reload current state' }).click();
    await eventually(() => page.locator('.meta').textContent()).toContain('theirs');
    await page.getByText('Edit value or details').click();
    await page.getByLabel('Description').last().fill('mine after all');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText(`Secret ${key} has been updated successfully`).first().waitFor();
    expect((await api('GET', `/api/secrets?prefix=${key}`)).body.secrets).toMatchObject([
      { description: 'mine after all', version: 2 },
    ]);
    await page.close();
  });

  it('deletes, restores, rolls back and purges with a typed confirmation', async () => {
    const key = uniqueKey('LIFE');
    const first = secretValue('first');
    expect((await api('POST', '/api/secrets', { key, value: first })).status).toBe(201);
    expect((await api('PUT', `/api/secrets/${key}`, { value: secretValue('second') })).status).toBe(200);
    const page = await openConsole();
    await signInWithToken(page);
    await openSecret(page, key);

    await page.getByRole('button', { name: 'Roll back to version 1' }).click();
    await page.getByText(`rolled back to version 1 as version 3`).first().waitFor();
    expect((await api('GET', `/api/secrets/${key}`)).body.value).toBe(first);

    await page.getByRole('button', { name: 'Delete secret' }).click();
    await page.getByText(`Secret ${key} has been deleted successfully`).first().waitFor();
    await eventually(() => page.locator('.meta').textContent()).toContain('Deleted (inactive)');
    expect((await api('GET', `/api/secrets/${key}`)).status).toBe(404);

    await page.getByRole('button', { name: 'Restore secret' }).click();
    await page.getByText(`Secret ${key} has been restored successfully`).first().waitFor();
    expect((await api('GET', `/api/secrets/${key}`)).body.value).toBe(first);

    await page.getByRole('button', { name: 'Delete secret' }).click();
    const purge = page.getByRole('button', { name: 'Purge permanently' });
    await eventually(() => purge.isDisabled()).toBe(true);
    await page.getByLabel(`Type ${key} to erase it`).fill(key.slice(0, -1));
    await eventually(() => purge.isDisabled()).toBe(true);
    await page.getByLabel(`Type ${key} to erase it`).fill(key);
    await purge.click();
    await page.getByText(`Secret ${key} has been purged permanently`).waitFor();
    expect((await api('GET', `/api/secrets/${key}/versions`)).status).toBe(404);
    await page.close();
  });

  it('creates an access key (token shown once) and revokes it, after which the API refuses it', async () => {
    const key = uniqueKey('AK');
    const value = secretValue('ak');
    expect((await api('POST', '/api/secrets', { key, value })).status).toBe(201);
    const page = await openConsole();
    await signInWithToken(page);
    await page.getByRole('link', { name: 'Access keys', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Access keys' }).waitFor();
    await page.getByText('New access key').click();
    const name = `ci-${key.toLowerCase()}`;
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel('Secret keys').fill(key);
    await page.getByRole('button', { name: 'Create access key' }).click();
    const tokenBox = page.getByLabel('New access key token');
    await eventually(() => tokenBox.textContent()).toMatch(/^ik_/);
    await page.getByText('it is shown only once').waitFor();
    const token = (await tokenBox.textContent()) ?? '';
    await page.getByRole('button', { name: 'Copy token' }).click();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(token);

    const read = () =>
      fetch(`${server.url}/api/secrets/${key}`, { headers: { authorization: `Bearer ${token}` } });
    const ok = await read();
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { value: string }).value).toBe(value);

    await page.getByRole('button', { name: 'I have stored it, hide the token' }).click();
    await eventually(() => tokenBox.count()).toBe(0);
    expect(await page.content()).not.toContain(token);
    const row = page.getByRole('row', { name: new RegExp(name) });
    await eventually(() => row.textContent()).toContain('active');
    await row.getByRole('button', { name: `Revoke ${name}` }).click();
    await page.getByText(`Access key ${name} has been revoked.`).waitFor();
    await eventually(() => row.textContent()).toContain('revoked');
    expect((await read()).status).toBe(401);
    await page.close();
  });

  it('creates a workload identity trust policy from the form, shows API errors, edits it in the same form, and deletes it with a typed confirmation', async () => {
    // The API reads the issuer's discovery document only at exchange time, never at creation,
    // so an https issuer nobody serves is fine here.
    const name = `gh-${Math.random().toString(36).slice(2, 8)}`;
    const page = await openConsole();
    await signInWithToken(page);
    await page.getByRole('link', { name: 'Workload identity', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Workload identity' }).waitFor();
    await eventually(async () => page.url()).toBe(`${server.url}/console/trusts`);
    await page.getByText('New trust policy').click();
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel(/^Issuer/).fill('http://issuer.example.com');
    await page.getByLabel(/^Audiences/).fill('https://secrets.example.com, ci');
    await page.getByLabel(/^Subject/).fill('repo:acme/shop:ref:refs/heads/main');
    await page.getByLabel(/^Claim bindings/).fill('repository_id=123456789\nenvironment=prod');
    await page.getByLabel('secrets:inject').check();
    await page.getByLabel(/^Secret keys granted/).fill('SHOP_*');
    await page.getByLabel(/^Lifetime/).fill('600');
    await page.getByRole('button', { name: 'Create trust policy' }).click();
    // The API's own refusal, shown as it is, and nothing created.
    await page.getByText('issuer must be an https:// URL').waitFor();
    await page.getByText(/What to do: Use the https issuer URL/).waitFor();
    expect((await api('GET', `/api/auth/trusts/${name}`)).status).toBe(404);
    await expectAccessible(page, 'trust policies with an error');

    await page.getByLabel(/^Issuer/).fill('https://token.actions.githubusercontent.com');
    await page.getByRole('button', { name: 'Create trust policy' }).click();
    await page.getByText(`Trust policy ${name} has been created.`).waitFor();
    const row = page.getByRole('row', { name: new RegExp(name) });
    await eventually(() => row.textContent()).toContain('https://token.actions.githubusercontent.com');
    const text = (await row.textContent()) ?? '';
    for (const part of [
      'https://secrets.example.com, ci',
      'repo:acme/shop:ref:refs/heads/main',
      'repository_id=123456789',
      'environment=prod',
      'secrets:read, secrets:inject',
      'SHOP_*',
      '10 min',
    ])
      expect(text).toContain(part);
    const listed = (await api('GET', '/api/auth/trusts')).body.trusts as Record<string, unknown>[];
    expect(listed.find((t) => t.name === name)).toMatchObject({
      issuer: 'https://token.actions.githubusercontent.com',
      audiences: ['https://secrets.example.com', 'ci'],
      subject: 'repo:acme/shop:ref:refs/heads/main',
      claims: { repository_id: '123456789', environment: 'prod' },
      scopes: ['secrets:read', 'secrets:inject'],
      keys: ['SHOP_*'],
      ttlSeconds: 600,
    });
    await expectAccessible(page, 'trust policies');
    // A reload keeps the view (its own URL).
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Workload identity' }).waitFor();

    // Edit: the same form, filled with the policy; saving replaces it (PUT).
    await page.getByRole('button', { name: `Edit ${name}` }).click();
    const edit = page.getByRole('region', { name: `Edit trust policy ${name}` });
    expect(await edit.getByLabel('Name', { exact: true }).inputValue()).toBe(name);
    expect(await edit.getByLabel(/^Audiences/).inputValue()).toBe('https://secrets.example.com, ci');
    // One line a binding, in the order the API lists them.
    expect((await edit.getByLabel(/^Claim bindings/).inputValue()).split('\n').sort()).toEqual([
      'environment=prod',
      'repository_id=123456789',
    ]);
    expect(await edit.getByLabel('secrets:inject').isChecked()).toBe(true);
    expect(await edit.getByLabel(/^Lifetime/).inputValue()).toBe('600');
    await expectAccessible(page, 'edit trust policy');
    // A bad path: the API's message, and the policy unchanged.
    await edit
      .getByLabel(/^Claim bindings/)
      .fill('repository_id=123456789\n/kubernetes.io//namespace=payments');
    await edit.getByRole('button', { name: 'Save trust policy' }).click();
    await edit
      .getByText(/JSON Pointer/)
      .first()
      .waitFor();
    expect((await api('GET', `/api/auth/trusts/${name}`)).body.claims).toEqual({
      repository_id: '123456789',
      environment: 'prod',
    });
    await edit.getByLabel(/^Subject/).fill('repo:acme/shop:environment:production');
    await edit
      .getByLabel(/^Claim bindings/)
      .fill('repository_id=123456789\n/kubernetes.io/namespace=payments');
    await edit.getByLabel('secrets:inject').uncheck();
    await edit.getByLabel(/^Secret keys granted/).fill('');
    await edit.getByLabel(/^Lifetime/).fill('1200');
    await edit.getByRole('button', { name: 'Save trust policy' }).click();
    await page.getByText(`Trust policy ${name} has been saved.`).waitFor();
    expect(await edit.count()).toBe(0);
    expect((await api('GET', `/api/auth/trusts/${name}`)).body).toMatchObject({
      issuer: 'https://token.actions.githubusercontent.com',
      audiences: ['https://secrets.example.com', 'ci'],
      subject: 'repo:acme/shop:environment:production',
      claims: { repository_id: '123456789', '/kubernetes.io/namespace': 'payments' },
      scopes: ['secrets:read'],
      keys: null,
      ttlSeconds: 1200,
    });
    await eventually(() => row.textContent()).toContain('/kubernetes.io/namespace=payments');
    expect(await row.textContent()).toContain('20 min');
    // Cancel closes the form and sends nothing.
    await page.getByRole('button', { name: `Edit ${name}` }).click();
    await edit.getByLabel(/^Subject/).fill('repo:someone/else:*');
    await edit.getByRole('button', { name: 'Cancel' }).click();
    expect(await edit.count()).toBe(0);
    expect((await api('GET', `/api/auth/trusts/${name}`)).body.subject).toBe(
      'repo:acme/shop:environment:production',
    );

    await page.getByRole('button', { name: `Delete ${name}` }).click();
    const confirm = page.getByLabel(`Type ${name} to delete it`);
    const del = page.getByRole('button', { name: 'Delete trust policy' });
    await confirm.fill(name.slice(0, -1));
    expect(await del.isDisabled()).toBe(true);
    await expectAccessible(page, 'delete trust confirmation');
    await confirm.fill(name);
    await del.click();
    await page.getByText(`Trust policy ${name} has been deleted.`).waitFor();
    await eventually(() => page.getByRole('row', { name: new RegExp(name) }).count()).toBe(0);
    expect((await api('GET', `/api/auth/trusts/${name}`)).status).toBe(404);
    await page.close();
  });

  it('opens the audit log on value reads and changes: listing entries hidden, not removed, one click away', async () => {
    const key = uniqueKey('BROWSE');
    expect((await api('POST', '/api/secrets', { key, value: secretValue() })).status).toBe(201);
    const page = await openConsole();
    await signInWithToken(page); // the list it shows writes secret.list rows
    await openSecret(page, key); // another list (the search), the value's versions
    await page.getByRole('button', { name: 'Reveal value' }).click(); // a value read
    await page.locator('.secret-value').waitFor();
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.getByText('listing entries').waitFor();
    const actions = () => page.locator('tbody tr td:nth-child(4)').allTextContents();
    await eventually(actions).toContain('secret.read');
    for (const hidden of BROWSING_ACTIONS) expect(await actions()).not.toContain(hidden);
    // Every entry, one click away, with its own URL; the log itself lost nothing.
    await page.getByRole('button', { name: 'Show every entry' }).click();
    await eventually(async () => page.url()).toBe(`${server.url}/console/audit?show=all`);
    await eventually(actions).toContain('secret.list');
    expect(await actions()).toContain('secret.versions');
    expect(await actions()).toContain('secret.read');
    const listed = (await api('GET', `/api/audit?action=secret.list&limit=50`)).body.entries as unknown[];
    expect(listed.length).toBeGreaterThanOrEqual(2);
    // An action filter is taken as asked, listing actions included.
    await page.getByRole('button', { name: 'Hide listing entries' }).click();
    await eventually(async () => page.url()).toBe(`${server.url}/console/audit`);
    await page.getByLabel('Action').fill('secret.list, secret.versions');
    await page.getByRole('button', { name: 'Filter' }).click();
    await eventually(async () => new Set(await actions())).toEqual(
      new Set(['secret.list', 'secret.versions']),
    );
    await page.close();
  });

  it('filters the audit log and verifies the chain', async () => {
    const key = uniqueKey('AUDIT');
    expect((await api('POST', '/api/secrets', { key, value: secretValue() })).status).toBe(201);
    expect((await api('GET', `/api/secrets/${key}`)).status).toBe(200);
    const page = await openConsole();
    await signInWithToken(page);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Secret key').fill(key);
    await page.getByRole('button', { name: 'Filter' }).click();
    const rows = page.locator('tbody tr');
    await eventually(() => rows.count()).toBe(2);
    await eventually(() => rows.first().textContent()).toContain('secret.read');
    await eventually(() => rows.last().textContent()).toContain('secret.create');
    // Times in the viewer's local time, UTC on hover (the title) and in datetime.
    const at = rows.first().locator('time');
    expect(await at.getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(await at.getAttribute('title')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(await at.textContent()).not.toContain('UTC');
    await page.getByLabel('Action').fill('secret.delete');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No audit entries match.').waitFor();

    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.getByText(/Chain intact: \d+ rows checked\./).waitFor();
    await page.close();
  });

  it('passes axe on every page at desktop and phone width, and asks nothing of another origin', async () => {
    const key = uniqueKey('TOUR');
    await api('POST', '/api/secrets', { key, value: secretValue(), description: 'Stripe live key' });
    await api('PUT', `/api/secrets/${key}`, { value: secretValue() });
    await api('POST', '/api/access-keys', { name: 'deploy-bot', scopes: ['secrets:read'], keys: ['TOUR_*'] });
    const page = await openConsole();
    await signInWithToken(page);
    await page.getByRole('row', { name: new RegExp(key) }).waitFor();
    await expectAccessible(page, 'secrets');
    await openSecret(page, key);
    await page.getByText('Edit value or details').click();
    await expectAccessible(page, 'secret detail');
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    await expectAccessible(page, 'create form');

    // Keyboard only: from the top of the page, Tab reaches the sections and Enter opens one.
    // (A reload keeps the session: the token is in this tab's sessionStorage; and the URL's
    // view: closed first, so the page starts at the list.)
    await page.getByRole('button', { name: 'Close', exact: true }).click();
    await eventually(async () => page.url()).toBe(`${server.url}/console/secrets`);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Secrets', exact: true }).waitFor();
    await page.keyboard.press('Tab');
    await eventually(() => page.evaluate<string>('document.activeElement.textContent')).toBe('Secrets');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Environments' }).waitFor();
    for (const [nav, heading] of [
      ['Environments', 'Environments'],
      ['Webhooks', 'Webhooks'],
      ['Access keys', 'Access keys'],
      ['Workload identity', 'Workload identity'],
      ['Audit log', 'Audit log'],
      ['Encryption keys', 'Encryption keys'],
    ] as const) {
      await page.getByRole('link', { name: nav, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
      if (nav === 'Audit log') {
        await page.getByRole('button', { name: 'Verify chain' }).click();
        await page.getByText(/Chain intact/).waitFor();
      }
      if (nav === 'Encryption keys') await page.getByText(/Active key id:/).waitFor();
      await expectAccessible(page, nav);
    }

    // Phone width: every page reflows instead of scrolling sideways (the page, or a table in
    // it), its controls lie within the screen, and it stays accessible.
    await page.setViewportSize({ width: 375, height: 740 });
    const fitsThePhone = async (where: string, controls: string[]) => {
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - window.innerWidth',
      );
      expect(overflow, `${where} scrolls sideways`).toBeLessThanOrEqual(0);
      const tables = await page.evaluate<number[]>(
        "[...document.querySelectorAll('.table-wrap')].map((e) => e.scrollWidth - e.clientWidth)",
      );
      for (const t of tables) expect(t, `a table on ${where} scrolls sideways`).toBeLessThanOrEqual(0);
      for (const name of ['Sign out', ...controls]) {
        const box = await page.getByRole('button', { name, exact: true }).first().boundingBox();
        expect(box, `${name} on ${where}`).not.toBeNull();
        expect((box?.x ?? -1) >= 0 && (box?.x ?? 0) + (box?.width ?? 0) <= 375, `${name} on ${where}`).toBe(
          true,
        );
      }
      for (const nav of [
        'Secrets',
        'Environments',
        'Webhooks',
        'Access keys',
        'Workload identity',
        'Audit log',
        'Encryption keys',
      ]) {
        const box = await page.getByRole('link', { name: nav, exact: true }).boundingBox();
        expect(
          (box?.x ?? -1) >= 0 && (box?.x ?? 0) + (box?.width ?? 0) <= 375,
          `${nav} link on ${where}`,
        ).toBe(true);
      }
      await expectAccessible(page, `${where} at phone width`);
    };
    await page.getByRole('link', { name: 'Secrets', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Secrets', exact: true }).waitFor();
    await page.getByRole('button', { name: `Open ${key}` }).waitFor();
    await fitsThePhone('secrets', ['Search', 'New secret', `Open ${key}`]);
    await openSecret(page, key);
    await fitsThePhone('secret detail', ['Reveal value', 'Delete secret', 'Close']);
    await page.getByRole('link', { name: 'Environments', exact: true }).click();
    await page.getByRole('button', { name: 'Compare', exact: true }).waitFor();
    await fitsThePhone('environments', ['Compare']);
    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.getByText('No webhooks yet.').waitFor();
    await fitsThePhone('webhooks', []);
    await page.getByRole('link', { name: 'Access keys', exact: true }).click();
    await page.getByRole('button', { name: 'Revoke deploy-bot' }).first().waitFor();
    await fitsThePhone('access keys', ['Revoke deploy-bot']);
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.locator('tbody tr').first().waitFor();
    await fitsThePhone('audit log', ['Verify chain', 'Filter', 'Show every entry']);
    await page.getByRole('link', { name: 'Encryption keys', exact: true }).click();
    await page.getByText(/Active key id:/).waitFor();
    await fitsThePhone('encryption keys', []);
    await page.close();

    // Every request any test's pages made went to the service's own origin.
    const foreign = requested.filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);
    expect(requested.length).toBeGreaterThan(10);
    expect(foreign).toEqual([]);
  });

  it('takes the README screenshots of a service with realistic names (docs/ with UPDATE_SCREENSHOTS=1)', async () => {
    // Its own service, so the pictures show a plausible project rather than the other tests' fixtures.
    const demo = await createTestServer();
    try {
      const as = (sub: string) => ({ ...demo.auth(sub), 'content-type': 'application/json' });
      const call = async (method: string, path: string, body?: unknown, sub = 'alice') => {
        const res = await fetch(`${demo.url}${path}`, {
          method,
          headers: as(sub),
          body: body === undefined ? null : JSON.stringify(body),
        });
        expect(res.status, `${method} ${path}`).toBeLessThan(300);
        return res.json() as Promise<Record<string, unknown>>;
      };
      const year = new Date().getUTCFullYear() + 1;
      for (const [key, description, extra] of [
        ['STRIPE_SECRET_KEY', 'Stripe live secret key (payments service)', {}],
        ['DATABASE_URL', 'Primary PostgreSQL of the orders service', {}],
        [
          'GITHUB_DEPLOY_TOKEN',
          'Fine-grained token for the release workflow',
          { expiresAt: `${year}-03-31T00:00:00Z` },
        ],
        ['SENDGRID_API_KEY', 'Transactional e-mail', {}],
        ['SLACK_WEBHOOK_URL', 'Alerts to #ops', {}],
        ['AWS_SECRET_ACCESS_KEY', 'S3 backups (IAM user backup-writer)', { isReserved: true }],
      ] as const)
        await call('POST', '/api/secrets', { key, value: secretValue(), description, ...extra });
      await call('PUT', '/api/secrets/STRIPE_SECRET_KEY', { value: secretValue() }, 'bob');
      const made = await call('POST', '/api/access-keys', {
        name: 'checkout-service',
        scopes: ['secrets:read'],
        keys: ['STRIPE_*', 'DATABASE_URL'],
      });
      for (const key of ['STRIPE_SECRET_KEY', 'DATABASE_URL']) {
        const read = await fetch(`${demo.url}/api/secrets/${key}`, {
          headers: { authorization: `Bearer ${made.token as string}` },
        });
        expect(read.status).toBe(200);
      }
      await call('GET', '/api/secrets/SLACK_WEBHOOK_URL', undefined, 'bob');

      const page = await context.newPage();
      await page.goto(`${demo.url}/console`);
      await page.getByLabel('Admin token (JWT)').fill(demo.token('alice'));
      await page.getByRole('button', { name: 'Use token' }).click();
      await page.getByRole('button', { name: 'Open STRIPE_SECRET_KEY' }).waitFor();
      await shot(page, 'secrets');
      await openSecret(page, 'STRIPE_SECRET_KEY');
      await page.getByText('Edit value or details').click();
      await shot(page, 'secret', true);
      await page.getByRole('link', { name: 'Audit log', exact: true }).click();
      await page.getByRole('button', { name: 'Verify chain' }).click();
      await page.getByText(/Chain intact/).waitFor();
      await eventually(() => page.locator('tbody tr').count()).toBeGreaterThan(5);
      await shot(page, 'audit');
      await page.close();
    } finally {
      await demo.close();
    }
  });
});
