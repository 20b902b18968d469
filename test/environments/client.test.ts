import { expect, it } from 'vitest';
import { createSecretsClient, inEnvironment, SecretsApiError } from '../../src/client/index.js';
import { secretValue } from '../helpers/secrets.js';
import { useTestServer } from '../helpers/server.js';

/** The typed client with an environment: the same methods, another environment's secrets. */
const t = useTestServer({ resetEachTest: true });

it('moves /api/secrets paths into the environment, and only those', () => {
  expect(inEnvironment('http://h/api/secrets/K?version=2', 'staging')).toBe(
    'http://h/api/environments/staging/secrets/K?version=2',
  );
  expect(inEnvironment('http://h/api/secrets', 'staging')).toBe('http://h/api/environments/staging/secrets');
  expect(inEnvironment('http://h/api/secrets/K', 'default')).toBe('http://h/api/secrets/K');
  expect(inEnvironment('http://h/api/audit', 'staging')).toBe('http://h/api/audit');
  expect(inEnvironment('http://h/api/secretsX', 'staging')).toBe('http://h/api/secretsX');
});

it('reads and writes in its environment; compares and promotes without values', async () => {
  await t.client.environments.create('staging');
  await t.client.environments.create('production');
  const staging = createSecretsClient({ baseUrl: t.url, token: t.token(), environment: 'staging' });
  const production = createSecretsClient({ baseUrl: t.url, token: t.token(), environment: 'production' });
  const v = secretValue('client');
  expect(await staging.setSecret('CLIENT_KEY', v)).toBe('created');
  expect(await staging.getSecret('CLIENT_KEY')).toBe(v);
  expect((await staging.listSecrets()).map((s) => s.key)).toEqual(['CLIENT_KEY']);
  expect(await t.client.listSecrets()).toEqual([]);
  await expect(production.getSecret('CLIENT_KEY')).rejects.toBeInstanceOf(SecretsApiError);

  const before = await t.client.environments.compare('staging', 'production');
  expect(before.keys).toEqual([expect.objectContaining({ key: 'CLIENT_KEY', status: 'only_in_a' })]);
  const promoted = await t.client.environments.promote('staging', 'production', [
    { key: 'CLIENT_KEY', targetEtag: null },
  ]);
  expect(promoted.results).toEqual([{ key: 'CLIENT_KEY', status: 'created' }]);
  expect(await production.getSecret('CLIENT_KEY')).toBe(v);
  expect((await t.client.environments.list()).map((e) => e.name)).toEqual([
    'default',
    'staging',
    'production',
  ]);
  await expect(t.client.environments.remove('staging')).rejects.toMatchObject({ status: 409 });
});
