import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, expectTypeOf, it } from 'vitest';
import { CLIENT_NAMES, clientTypes } from '../../scripts/write-client-types.js';
import {
  type CreatedWebhook,
  createSecretsClient,
  SecretsApiError,
  SecretsUnreachableError,
  type TrustPolicy,
  type TrustPolicyInput,
  type Webhook,
  type WebhookInput,
  type WebhookPatch,
} from '../../src/client/index.js';
import { secretValue } from '../helpers/secrets.js';
import { useTestServer } from '../helpers/server.js';

const t = useTestServer();

it('the committed client types match openapi/openapi.json (run npm run client:generate)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'client-'));
  try {
    const out = join(dir, 'schema.d.ts');
    execFileSync(
      'node_modules/.bin/openapi-typescript',
      ['openapi/openapi.json', '--default-non-nullable', 'false', '-o', out],
      {
        stdio: 'pipe',
      },
    );
    expect(await readFile(out, 'utf8')).toBe(await readFile('src/client/schema.d.ts', 'utf8'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('the committed client type aliases match openapi/openapi.json (run npm run client:generate)', async () => {
  const doc = JSON.parse(await readFile('openapi/openapi.json', 'utf8'));
  expect(await readFile('src/client/types.ts', 'utf8')).toBe(clientTypes(doc));
});

it('names every schema of the document: a schema added is a type of the client, its input side is not', async () => {
  const doc = JSON.parse(await readFile('openapi/openapi.json', 'utf8'));
  const added = { ...doc.components.schemas, Gadget: { type: 'object' }, GadgetInput: { type: 'object' } };
  const text = clientTypes({ ...doc, components: { ...doc.components, schemas: added } });
  expect(text).toContain("export type Gadget = components['schemas']['Gadget'];");
  expect(text).not.toContain('GadgetInput');
  expect(text).toContain("export type Webhook = components['schemas']['Webhook'];");
  // The client's older names stay, each naming the schema it always named.
  expect(text).toContain("export type WebhookInput = components['schemas']['CreateWebhookRequest'];");
  expect(Object.keys(CLIENT_NAMES).sort()).toEqual(
    ['BatchEntry', 'ErrorBody', 'TrustPolicyInput', 'WebhookInput', 'WebhookPatch'].sort(),
  );
  const { ErrorResponse: _, ...withoutErrorBody } = doc.components.schemas;
  expect(() => clientTypes({ components: { schemas: withoutErrorBody } })).toThrow(
    'ErrorBody names ErrorResponse, which the document does not define',
  );
});

it('creates, updates, reads, lists (every page) and deletes through the typed client', async () => {
  const c = t.client;
  const v1 = secretValue('c1');
  const v2 = secretValue('c2');
  expect(await c.setSecret('CLIENT_A', v1)).toBe('created');
  expect(await c.setSecret('CLIENT_A', v2)).toBe('updated');
  expect(await c.getSecret('CLIENT_A')).toBe(v2);
  for (let i = 0; i < 3; i++) await c.setSecret(`CLIENT_P${i}`, secretValue('p'));
  const { data } = await c.api.GET('/api/secrets', { params: { query: { limit: 2, prefix: 'CLIENT_P' } } });
  expect(data?.secrets).toHaveLength(2);
  expect(data?.nextCursor).toBeTruthy();
  expect((await c.listSecrets({ prefix: 'CLIENT_' })).map((s) => s.key).sort()).toEqual([
    'CLIENT_A',
    'CLIENT_P0',
    'CLIENT_P1',
    'CLIENT_P2',
  ]);
  await c.deleteSecret('CLIENT_A');
  expect((await c.listSecrets({ prefix: 'CLIENT_A', active: true })).length).toBe(0);
  expect((await c.listSecrets({ prefix: 'CLIENT_A' }))[0]?.isActive).toBe(false);
});

it('turns error bodies into SecretsApiError and no answer into SecretsUnreachableError', async () => {
  const notFound = await t.client.getSecret('CLIENT_MISSING').catch((e) => e);
  expect(notFound).toBeInstanceOf(SecretsApiError);
  expect(notFound).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  const anon = await createSecretsClient({ baseUrl: t.url })
    .getSecret('X')
    .catch((e) => e);
  expect(anon).toMatchObject({ status: 401, code: 'AUTH_INVALID_CREDENTIALS' });
  const viewer = createSecretsClient({ baseUrl: t.url, token: t.token('v', { role: 'viewer' }) });
  expect(await viewer.exportSecrets().catch((e) => e)).toMatchObject({ status: 403 });
  // a port that was just free: nothing listens there
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const down = await createSecretsClient({ baseUrl: `http://127.0.0.1:${port}` })
    .getSecret('X')
    .catch((e) => e);
  expect(down).toBeInstanceOf(SecretsUnreachableError);
  expect(down.message).toContain('ECONNREFUSED');
});

it('types the trust and webhook methods from the schema: a wrong body does not compile', () => {
  const c = t.client;
  expectTypeOf(c.trusts.list).returns.resolves.toEqualTypeOf<TrustPolicy[]>();
  expectTypeOf(c.trusts.create).parameter(0).toEqualTypeOf<TrustPolicyInput>();
  expectTypeOf(c.trusts.create).returns.resolves.toEqualTypeOf<TrustPolicy>();
  expectTypeOf(c.trusts.replace).parameters.toEqualTypeOf<[string, TrustPolicyInput]>();
  expectTypeOf(c.trusts.remove).returns.resolves.toEqualTypeOf<TrustPolicy>();
  expectTypeOf(c.webhooks.list).returns.resolves.toEqualTypeOf<Webhook[]>();
  expectTypeOf(c.webhooks.create).parameter(0).toEqualTypeOf<WebhookInput>();
  expectTypeOf(c.webhooks.create).returns.resolves.toEqualTypeOf<CreatedWebhook>();
  expectTypeOf(c.webhooks.update).parameters.toEqualTypeOf<[string, WebhookPatch]>();
  expectTypeOf(c.webhooks.update).returns.resolves.toEqualTypeOf<Webhook>();
  expectTypeOf(c.webhooks.remove).returns.resolves.toEqualTypeOf<void>();
  // Never called: only the compiler reads these.
  const wrongBodies = () => [
    // @ts-expect-error a trust policy has no `url`
    c.trusts.create({ url: 'https://example.test' }),
    // @ts-expect-error a webhook patch's `enabled` is a boolean
    c.webhooks.update('w', { enabled: 'yes' }),
    // @ts-expect-error replace takes the policy's name and the whole policy
    c.trusts.replace({ name: 'x' }),
  ];
  expect(typeof wrongBodies).toBe('function');
});
