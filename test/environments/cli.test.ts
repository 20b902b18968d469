import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { cli, cliStderr } from '../helpers/cli.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/** The CLI and environments: --env, SECRETS_ENV and the login profile, and `secrets env`. */
let t: TestServer;
let env: Record<string, string>;
let home: string;
beforeAll(async () => {
  t = await createTestServer();
  home = await mkdtemp(join(tmpdir(), 'secrets-cli-env-'));
  env = { SECRETS_URL: t.url, SECRETS_TOKEN: t.token('cli-env'), XDG_CONFIG_HOME: home };
});
afterAll(async () => {
  await t?.close();
  await rm(home, { recursive: true, force: true });
  const leaks = [...issuedValues].filter((v) => cliStderr.some((s) => s.includes(v)));
  expect(leaks).toEqual([]);
});
beforeEach(async () => t.reset());

it('secrets env create|list|compare|delete', async () => {
  expect(await cli(['env', 'create', 'staging', '--description', 'pre-prod'], { env })).toMatchObject({
    code: 0,
  });
  expect((await cli(['env', 'create', 'production'], { env })).code).toBe(0);
  expect((await cli(['env', 'list'], { env })).stdout).toBe('default\nstaging\nproduction\n');
  const listed = JSON.parse((await cli(['env', 'list', '--format', 'json'], { env })).stdout);
  expect(listed[1]).toMatchObject({ name: 'staging', description: 'pre-prod' });
  expect((await cli(['env', 'create', 'Bad Name'], { env })).code).toBe(2);

  const same = secretValue('same');
  const differs: Record<string, string> = {};
  for (const e of ['staging', 'production']) {
    await cli(['set', 'SHARED', '--env', e], { env, input: same });
    differs[e] = secretValue(e);
    await cli(['set', 'DIFFERS', '--env', e], { env, input: differs[e] });
  }
  await cli(['set', 'ONLY_STAGING', '--env', 'staging'], { env, input: secretValue() });
  const compared = await cli(['env', 'compare', 'staging', 'production'], { env });
  expect(compared).toMatchObject({
    code: 0,
    stdout: 'different DIFFERS\nonly_in_a ONLY_STAGING\nequal SHARED\n',
  });
  for (const v of issuedValues) expect(compared.stdout).not.toContain(v);

  // Promote: one batch, each key compared-and-set against what production held.
  const promoted = await cli(['env', 'promote', 'staging', 'production', 'DIFFERS', 'ONLY_STAGING'], { env });
  expect(promoted).toMatchObject({ code: 0, stdout: '' });
  expect(promoted.stderr).toContain('updated DIFFERS in production');
  expect(promoted.stderr).toContain('created ONLY_STAGING in production');
  expect((await cli(['get', 'DIFFERS', '--env', 'production'], { env })).stdout).toBe(differs.staging);
  const notThere = await cli(['env', 'promote', 'staging', 'production', 'NOT_A_KEY'], { env });
  expect(notThere.code).toBe(2);
  expect(notThere.stderr).toContain('not in staging: NOT_A_KEY');
  expect((await cli(['env', 'compare', 'staging', 'production'], { env })).stdout).toBe(
    'equal DIFFERS\nequal ONLY_STAGING\nequal SHARED\n',
  );

  const busy = await cli(['env', 'delete', 'staging'], { env });
  expect(busy.code).toBe(8);
  expect(busy.stderr).toContain('still holds 3 active secrets');
  for (const k of ['SHARED', 'DIFFERS', 'ONLY_STAGING'])
    await cli(['delete', k, '--env', 'staging'], { env });
  expect((await cli(['env', 'delete', 'staging'], { env })).code).toBe(0);
  expect((await cli(['env', 'list'], { env })).stdout).toBe('default\nproduction\n');
});

it('--env, SECRETS_ENV and the login profile pick the environment of every command', async () => {
  await cli(['env', 'create', 'staging'], { env });
  const [def, stg] = [secretValue('default'), secretValue('staging')];
  await cli(['set', 'APP_KEY'], { env, input: def });
  await cli(['set', 'APP_KEY', '--env', 'staging'], { env, input: stg });
  expect((await cli(['get', 'APP_KEY'], { env })).stdout).toBe(def);
  expect((await cli(['get', 'APP_KEY', '--env', 'staging'], { env })).stdout).toBe(stg);
  expect((await cli(['--env', 'staging', 'get', 'APP_KEY'], { env })).stdout).toBe(stg);
  expect((await cli(['get', 'APP_KEY'], { env: { ...env, SECRETS_ENV: 'staging' } })).stdout).toBe(stg);
  // An empty SECRETS_ENV is no setting.
  expect((await cli(['get', 'APP_KEY'], { env: { ...env, SECRETS_ENV: '' } })).stdout).toBe(def);
  const exported = await cli(['export', '--format', 'json', '--env', 'staging'], { env });
  expect(JSON.parse(exported.stdout)).toEqual({ APP_KEY: stg });
  const run = await cli(['run', '--env', 'staging', '--', 'sh', '-c', 'printf %s "$APP_KEY"'], { env });
  expect(run).toMatchObject({ code: 0, stdout: stg });
  expect((await cli(['get', 'APP_KEY', '--env', 'nowhere'], { env })).code).toBe(6);
  expect((await cli(['get', 'APP_KEY', '--env', 'No'], { env })).code).toBe(2);

  // The profile remembers an environment; a flag still wins.
  const { SECRETS_TOKEN: token, ...noToken } = env;
  const login = await cli(['login', '--env', 'staging', '--token-stdin'], {
    env: noToken,
    input: `${token}\n`,
  });
  expect(login.code, login.stderr).toBe(0);
  const profiles = JSON.parse(await readFile(join(home, 'secrets-service', 'profiles.json'), 'utf8'));
  expect(profiles.profiles.default.environment).toBe('staging');
  expect((await cli(['get', 'APP_KEY'], { env: noToken })).stdout).toBe(stg);
  expect((await cli(['get', 'APP_KEY', '--env', 'default'], { env: noToken })).stdout).toBe(def);
});

it('an access key for staging gets exit code 5 for production, naming nothing there', async () => {
  await cli(['env', 'create', 'staging'], { env });
  await cli(['env', 'create', 'production'], { env });
  await cli(['set', 'PROD_ONLY', '--env', 'production'], { env, input: secretValue() });
  const k = await createAccessKey(t, { scopes: ['secrets:read', 'secrets:list'], environments: ['staging'] });
  const keyEnv = { SECRETS_URL: t.url, SECRETS_TOKEN: k.token, XDG_CONFIG_HOME: home };
  const list = await cli(['list', '--env', 'production'], { env: keyEnv });
  expect(list.code).toBe(5);
  expect(list.stderr).toContain('does not cover the environment production');
  expect(list.stderr).not.toContain('PROD_ONLY');
  expect((await cli(['env', 'list'], { env: keyEnv })).stdout).toBe('staging\n');
});
