import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, expectAccessible, useConsoleBrowser } from '../helpers/console-browser.js';
import { secretValue } from '../helpers/secrets.js';
import { type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * The console's environments (switcher, compare, promote, create/delete) and webhooks
 * (create with the secret shown once, delivery log, redeliver, rotate, edit, delete) in a
 * real browser against a real listening server on PGlite, like console.e2e.test.ts. This
 * file's server is its own, so the environments have plain names. Webhook delivery runs on
 * the server's own poller to a receiver on loopback (WEBHOOK_ALLOW_PRIVATE, as the events
 * tests allow it) that verifies every signature with the standardwebhooks package.
 */
const b = useConsoleBrowser({ WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE: 'true' });

const receivers: Receiver[] = [];
afterAll(async () => {
  for (const r of receivers) await r.close();
});

const created = async (method: string, path: string, body?: unknown) => {
  const res = await b.api(method, path, body);
  expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  return res.body;
};
const envSecrets = (env: string) => (env === 'default' ? '/api/secrets' : `/api/environments/${env}/secrets`);
const keysShown = (page: Page) => page.locator('table.secrets tbody th').allTextContents();

// Values seeded below; none may ever appear in a compare page.
const V = {
  stripeStaging: secretValue('stripe_staging'),
  stripeProduction: secretValue('stripe_production'),
  shared: secretValue('shared'),
  stagingOnly: secretValue('staging_only'),
  productionOnly: secretValue('production_only'),
  defaultOnly: secretValue('default_only'),
};

describe('console environments and webhooks', { timeout: 240_000 }, () => {
  it('switches environment, shows only its secrets, and keeps it in the URL through reload, back and forward', async () => {
    await created('POST', '/api/environments', { name: 'staging', description: 'pre-production' });
    await created('POST', '/api/environments', { name: 'production' });
    await created('POST', envSecrets('staging'), { key: 'STRIPE_API_KEY', value: V.stripeStaging });
    await created('POST', envSecrets('production'), { key: 'STRIPE_API_KEY', value: V.stripeProduction });
    await created('POST', envSecrets('staging'), { key: 'SENTRY_DSN', value: V.shared });
    await created('POST', envSecrets('production'), { key: 'SENTRY_DSN', value: V.shared });
    await created('POST', envSecrets('staging'), { key: 'FEATURE_FLAGS_TOKEN', value: V.stagingOnly });
    await created('POST', envSecrets('production'), { key: 'PAGER_API_KEY', value: V.productionOnly });
    await created('POST', envSecrets('default'), { key: 'LEGACY_API_KEY', value: V.defaultOnly });

    const page = await b.signedIn();
    await eventually(() => keysShown(page)).toEqual(['LEGACY_API_KEY']);
    const switcher = page.getByLabel('Environment', { exact: true });
    await eventually(() => switcher.locator('option').allTextContents()).toEqual([
      'default',
      'staging',
      'production',
    ]);
    await switcher.selectOption('staging');
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/secrets?env=staging`);
    await eventually(async () => (await keysShown(page)).sort()).toEqual([
      'FEATURE_FLAGS_TOKEN',
      'SENTRY_DSN',
      'STRIPE_API_KEY',
    ]);
    await expectAccessible(page, 'secrets in staging');

    // One secret of staging: its URL names the environment, and the value is staging's.
    await page.getByRole('button', { name: 'Open STRIPE_API_KEY' }).click();
    await page.getByRole('heading', { level: 2, name: 'STRIPE_API_KEY' }).waitFor();
    expect(page.url()).toBe(`${b.server.url}/console/secrets/STRIPE_API_KEY?env=staging`);
    await page.getByRole('button', { name: 'Reveal value' }).click();
    await eventually(() => page.getByLabel('Value of STRIPE_API_KEY').textContent()).toBe(V.stripeStaging);
    await page.getByRole('button', { name: 'Hide value' }).click();

    await page.reload();
    await page.getByRole('heading', { level: 2, name: 'STRIPE_API_KEY' }).waitFor();
    expect(await switcher.inputValue()).toBe('staging');
    await page.getByRole('button', { name: 'Close', exact: true }).click();
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/secrets?env=staging`);

    await switcher.selectOption('production');
    await eventually(async () => (await keysShown(page)).sort()).toEqual([
      'PAGER_API_KEY',
      'SENTRY_DSN',
      'STRIPE_API_KEY',
    ]);
    await page.goBack();
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/secrets?env=staging`);
    await eventually(async () => (await keysShown(page)).sort()).toEqual([
      'FEATURE_FLAGS_TOKEN',
      'SENTRY_DSN',
      'STRIPE_API_KEY',
    ]);
    expect(await switcher.inputValue()).toBe('staging');
    await page.goForward();
    await eventually(() => switcher.inputValue()).toBe('production');
    await eventually(async () => (await keysShown(page)).sort()).toContain('PAGER_API_KEY');

    // Created from the form in production: there, and nowhere else.
    await page.getByRole('button', { name: 'New secret', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill('WEBHOOK_SIGNING_KEY');
    await page.getByLabel('Value', { exact: true }).fill(secretValue('made_in_production'));
    await page.getByRole('button', { name: 'Create secret' }).click();
    await page.getByText('Secret WEBHOOK_SIGNING_KEY has been created successfully').first().waitFor();
    expect((await b.api('GET', `${envSecrets('production')}?prefix=WEBHOOK_`)).body.secrets).toHaveLength(1);
    expect((await b.api('GET', `${envSecrets('default')}?prefix=WEBHOOK_`)).body.secrets).toHaveLength(0);
    expect((await b.api('GET', `${envSecrets('staging')}?prefix=WEBHOOK_`)).body.secrets).toHaveLength(0);

    // Edit, versions, rollback, delete and restore act on production's secret.
    const inProduction = `${envSecrets('production')}/WEBHOOK_SIGNING_KEY`;
    await page.getByRole('button', { name: 'Open WEBHOOK_SIGNING_KEY' }).click();
    await page.getByRole('heading', { level: 2, name: 'WEBHOOK_SIGNING_KEY' }).waitFor();
    expect(page.url()).toBe(`${b.server.url}/console/secrets/WEBHOOK_SIGNING_KEY?env=production`);
    await page.getByText('Edit value or details').click();
    await page.getByLabel(/^New value/).fill(secretValue('second_in_production'));
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('Secret WEBHOOK_SIGNING_KEY has been updated successfully').first().waitFor();
    await page.getByRole('button', { name: 'Roll back to version 1' }).click();
    await page.getByText('rolled back to version 1 as version 3').first().waitFor();
    expect(((await b.api('GET', `${inProduction}/versions`)).body.versions as unknown[]).length).toBe(3);
    await page.getByRole('button', { name: 'Delete secret' }).click();
    await page.getByText('Secret WEBHOOK_SIGNING_KEY has been deleted successfully').first().waitFor();
    expect((await b.api('GET', inProduction)).status).toBe(404);
    await page.getByRole('button', { name: 'Restore secret' }).click();
    await page.getByText('Secret WEBHOOK_SIGNING_KEY has been restored successfully').first().waitFor();
    expect((await b.api('GET', inProduction)).status).toBe(200);
    expect((await b.api('GET', `${envSecrets('default')}/WEBHOOK_SIGNING_KEY`)).status).toBe(404);

    // The Secrets link returns to the environment last shown.
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.getByRole('link', { name: 'Secrets', exact: true }).click();
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/secrets?env=production`);
    await page.close();
  });

  it('compares two environments without a value in the page, and promotes selected keys after a typed confirmation', async () => {
    const page = await b.signedIn('/console/environments');
    await page.getByRole('heading', { level: 1, name: 'Environments' }).waitFor();
    const compare = page.getByRole('form', { name: 'Compare two environments' });
    await compare.getByLabel('From (a)').selectOption('staging');
    await compare.getByLabel('To (b)').selectOption('production');
    await compare.getByRole('button', { name: 'Compare' }).click();
    await eventually(async () => page.url()).toBe(
      `${b.server.url}/console/environments?a=staging&b=production`,
    );

    const row = (key: string) => page.locator('table.comparison tbody tr', { hasText: key });
    await eventually(() => row('STRIPE_API_KEY').textContent()).toContain('Different');
    expect(await row('STRIPE_API_KEY').getAttribute('class')).toBe('cmp-different');
    expect(await row('SENTRY_DSN').textContent()).toContain('Equal');
    expect(await row('FEATURE_FLAGS_TOKEN').textContent()).toContain('Only in staging');
    expect(await row('PAGER_API_KEY').textContent()).toContain('Only in production');
    await page.getByText('1 only in staging, 2 only in production, 1 equal, 1 different.').waitFor();
    const noValues = async () => {
      const html = await page.content();
      for (const v of Object.values(V)) expect(html).not.toContain(v);
    };
    await noValues();
    await expectAccessible(page, 'environments with a comparison');
    await b.shot(page, 'environments', true);

    // A reload shows the same comparison (the pair is in the URL), the selects naming it.
    await page.reload();
    await eventually(() => row('STRIPE_API_KEY').textContent()).toContain('Different');
    await eventually(() => compare.getByLabel('From (a)').inputValue()).toBe('staging');
    expect(await compare.getByLabel('To (b)').inputValue()).toBe('production');

    // Equal and production-only keys cannot be promoted from staging.
    expect(await page.getByLabel('Promote SENTRY_DSN').count()).toBe(0);
    expect(await page.getByLabel('Promote PAGER_API_KEY').count()).toBe(0);
    await page.getByLabel('Promote STRIPE_API_KEY').check();
    await page.getByLabel('Promote FEATURE_FLAGS_TOKEN').check();
    await page.getByRole('button', { name: 'Promote 2 selected to production' }).click();
    const confirm = page.getByLabel('Type production to promote');
    const go = page.getByRole('button', { name: 'Promote to production' });
    expect(await go.isDisabled()).toBe(true);
    await confirm.fill('staging');
    expect(await go.isDisabled()).toBe(true);
    await confirm.fill('productio');
    expect(await go.isDisabled()).toBe(true);
    await expectAccessible(page, 'promote confirmation');
    // Nothing was promoted before the confirmation.
    expect((await b.api('GET', `${envSecrets('production')}/STRIPE_API_KEY`)).body.value).toBe(
      V.stripeProduction,
    );
    await confirm.fill('production');
    await go.click();
    const promoted = page.getByText(/^Promoted from staging to production: /);
    await promoted.waitFor();
    expect(await promoted.textContent()).toContain('FEATURE_FLAGS_TOKEN (created)');
    expect(await promoted.textContent()).toContain('STRIPE_API_KEY (updated)');
    expect((await b.api('GET', `${envSecrets('production')}/STRIPE_API_KEY`)).body.value).toBe(
      V.stripeStaging,
    );
    expect((await b.api('GET', `${envSecrets('production')}/FEATURE_FLAGS_TOKEN`)).body.value).toBe(
      V.stagingOnly,
    );
    expect((await b.api('GET', `${envSecrets('staging')}/STRIPE_API_KEY`)).body.value).toBe(V.stripeStaging);
    await eventually(() => row('STRIPE_API_KEY').textContent()).toContain('Equal');
    expect(await row('FEATURE_FLAGS_TOKEN').textContent()).toContain('Equal');
    await noValues();
    await page.close();
  });

  it('a promote whose target changed after the comparison writes nothing and says so', async () => {
    const page = await b.signedIn('/console/environments?a=production&b=staging');
    const row = page.locator('table.comparison tbody tr', { hasText: 'PAGER_API_KEY' });
    await eventually(() => row.textContent()).toContain('Only in production');
    await page.getByLabel('Promote PAGER_API_KEY').check();
    // Someone creates the key in staging after the console compared.
    await created('POST', envSecrets('staging'), { key: 'PAGER_API_KEY', value: secretValue('racing') });
    await page.getByRole('button', { name: 'Promote 1 selected to staging' }).click();
    await page.getByLabel('Type staging to promote').fill('staging');
    await page.getByRole('button', { name: 'Promote to staging' }).click();
    await page.getByText('Error 412').waitFor();
    expect((await b.api('GET', `${envSecrets('staging')}/PAGER_API_KEY`)).body.value).not.toBe(
      V.productionOnly,
    );
    await page.close();
  });

  it('creates an environment from the form and refuses to delete it while it holds secrets (409 shown)', async () => {
    const page = await b.signedIn('/console/environments');
    await page.getByText('New environment').click();
    await page.getByLabel('Name', { exact: true }).fill('Preview');
    await page.getByRole('button', { name: 'Create environment' }).click();
    await page.getByText(/an environment name must be/).waitFor(); // the API's rule, shown as sent
    await page.getByLabel('Name', { exact: true }).fill('preview');
    await page.getByLabel('Description (optional)').fill('per-branch previews');
    await page.getByRole('button', { name: 'Create environment' }).click();
    await page.getByText('Environment preview has been created.').waitFor();
    const row = page.getByRole('row', { name: /preview/ });
    await eventually(() => row.textContent()).toContain('per-branch previews');
    await created('POST', envSecrets('preview'), { key: 'PREVIEW_TOKEN', value: secretValue('preview') });

    await page.reload();
    await page.getByRole('button', { name: 'Delete preview' }).click();
    await page.getByText('Secrets in preview: 1 active, 0 deleted.').waitFor();
    const del = page.getByRole('button', { name: 'Delete environment' });
    await page.getByLabel('Type preview to delete it').fill('preview');
    await del.click();
    await page.getByText('Error 409').waitFor();
    await page.getByText(/still holds 1 active secret/).waitFor();
    expect((await b.api('GET', '/api/environments/preview')).status).toBe(200);
    expect(await page.getByRole('button', { name: 'Delete default' }).count()).toBe(0);

    await created('DELETE', `${envSecrets('preview')}/PREVIEW_TOKEN`);
    await del.click();
    await page.getByText('Environment preview has been deleted.').waitFor();
    await eventually(() => page.getByRole('row', { name: /preview/ }).count()).toBe(0);
    expect((await b.api('GET', '/api/environments/preview')).status).toBe(404);
    await page.close();
  });

  it('creates a webhook (secret shown once), lists its deliveries to a local receiver, redelivers, rotates, edits and deletes it', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const page = await b.signedIn('/console/webhooks');
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await page.getByText('New webhook').click();
    await page.getByLabel('URL', { exact: true }).fill(receiver.url);
    await page.getByLabel('Description (optional)').fill('redeploy on change');
    await page.getByLabel('secret.expiring').uncheck();
    await page.getByLabel(/^Key prefixes/).fill('DEPLOY_');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    const box = page.getByLabel('Signing secret', { exact: true });
    await eventually(() => box.textContent()).toMatch(/^whsec_/);
    await page.getByText('it is shown only once').waitFor();
    const secret = (await box.textContent()) ?? '';
    receiver.secrets.push(secret);
    await page.getByRole('button', { name: 'Copy signing secret' }).click();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(secret);
    const [hook] = (await b.api('GET', '/api/webhooks')).body.webhooks as {
      id: string;
      keyPrefixes: string[];
      eventTypes: string[];
    }[];
    expect(hook?.keyPrefixes).toEqual(['DEPLOY_']);
    expect(hook?.eventTypes).not.toContain('secret.expiring');
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/webhooks/${hook?.id}`);
    await expectAccessible(page, 'webhooks with a new secret');

    // A reload shows the webhook, never its secret again.
    await page.reload();
    await page.getByRole('heading', { level: 2, name: `Webhook ${receiver.url}` }).waitFor();
    expect(await page.content()).not.toContain(secret);
    expect(await page.content()).not.toContain('whsec_');

    // A change it subscribes to is delivered to the receiver, and the log says so.
    await created('POST', '/api/secrets', { key: 'DEPLOY_TOKEN', value: secretValue('deploy') });
    await receiver.waitFor(1);
    const rows = page.locator('.deliveries tbody tr');
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh deliveries' }).click();
      return rows.first().textContent();
    }).toMatch(/delivered/);
    const first = (await rows.first().textContent()) ?? '';
    expect(first).toContain('secret.created DEPLOY_TOKEN');
    expect(first).toContain('204');
    expect(first).toMatch(/\d+ ms/);
    expect(receiver.received[0]?.body).toMatchObject({
      type: 'secret.created',
      data: { key: 'DEPLOY_TOKEN' },
    });
    await b.shot(page, 'webhooks', true);

    // Redeliver: the same event (same webhook-id) once more, a second row in the log.
    const deliveryId = await rows.first().locator('th').textContent();
    await page.getByRole('button', { name: `Redeliver ${deliveryId}` }).click();
    await page.getByText(new RegExp(`Delivery ${deliveryId} queued again as delivery \\d+\\.`)).waitFor();
    await receiver.waitFor(2);
    expect(receiver.received[1]?.id).toBe(receiver.received[0]?.id);
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh deliveries' }).click();
      return (await rows.allTextContents()).filter((t) => t.includes('delivered')).length;
    }).toBe(2);
    expect(receiver.rejected).toBe(0);

    // Rotate: a new secret, shown once; the old one keeps signing for the grace period.
    await page.getByRole('button', { name: 'Rotate signing secret' }).click();
    await eventually(() => box.textContent()).toMatch(/^whsec_/);
    const rotated = (await box.textContent()) ?? '';
    expect(rotated).not.toBe(secret);
    await page.getByRole('button', { name: 'I have stored it, hide the signing secret' }).click();
    await eventually(() => box.count()).toBe(0);
    expect(await page.content()).not.toContain(rotated);

    // Edit: the prefixes change, and disabling is a checkbox.
    await page.getByText('Edit webhook').click();
    await page
      .getByLabel(/^Key prefixes/)
      .last()
      .fill('DEPLOY_, RELEASE_');
    await page.getByLabel(/^Enabled/).uncheck();
    await page.getByRole('button', { name: 'Save webhook' }).click();
    await page.getByText('The webhook has been saved.').waitFor();
    expect((await b.api('GET', `/api/webhooks/${hook?.id}`)).body).toMatchObject({
      keyPrefixes: ['DEPLOY_', 'RELEASE_'],
      enabled: false,
      description: 'redeploy on change',
    });

    await page.getByRole('button', { name: 'Delete webhook' }).click();
    await page.getByText(`The webhook for ${receiver.url} has been deleted.`).waitFor();
    await eventually(async () => page.url()).toBe(`${b.server.url}/console/webhooks`);
    await page.getByText('No webhooks yet.').waitFor();
    expect((await b.api('GET', `/api/webhooks/${hook?.id}`)).status).toBe(404);
    await page.close();
  });
});
