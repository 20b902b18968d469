import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { cli, cliStderr } from '../helpers/cli.js';
import { api } from '../helpers/http.js';
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

/**
 * Set-up the CLI is not under test for, through the API: each CLI command is a Node process
 * (a few tenths of a second of CPU, seconds on a loaded machine), so the file starts only the
 * ones whose behaviour it checks.
 */
async function createEnv(name: string) {
  const r = await api(t).req('POST', '/api/environments', { name });
  expect(r.statusCode, r.body).toBe(201);
}
async function put(envName: string, key: string, value: string) {
  const r = await api(t).req('POST', `/api/environments/${envName}/secrets`, { key, value });
  expect(r.statusCode, r.body).toBe(201);
}

it('secrets env create|list|compare|delete', async () => {
  expect(await cli(['env', 'create', 'staging', '--description', 'pre-prod'], { env })).toMatchObject({
    code: 0,
  });
  expect((await cli(['env', 'create', 'production'], { env })).code).toBe(0);
  // Reads and a refused create (it changes nothing; the last listing below shows that too),
  // side by side.
  const [plain, asJson, bad] = await Promise.all([
    cli(['env', 'list'], { env }),
    cli(['env', 'list', '--format', 'json'], { env }),
    cli(['env', 'create', 'Bad Name'], { env }),
  ]);
  expect(plain.stdout).toBe('default\nstaging\nproduction\n');
  expect(JSON.parse(asJson.stdout)[1]).toMatchObject({ name: 'staging', description: 'pre-prod' });
  expect(bad.code).toBe(2);

  // The values to compare are written through the API: `set --env` is the next test's subject.
  const same = secretValue('same');
  const differs: Record<string, string> = {};
  for (const e of ['staging', 'production']) {
    differs[e] = secretValue(e);
    await put(e, 'SHARED', same);
    await put(e, 'DIFFERS', differs[e]);
  }
  await put('staging', 'ONLY_STAGING', secretValue());
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
  const [got, notThere] = await Promise.all([
    cli(['get', 'DIFFERS', '--env', 'production'], { env }),
    cli(['env', 'promote', 'staging', 'production', 'NOT_A_KEY'], { env }),
  ]);
  expect(got.stdout).toBe(differs.staging);
  expect(notThere.code).toBe(2);
  expect(notThere.stderr).toContain('not in staging: NOT_A_KEY');
  expect((await cli(['env', 'compare', 'staging', 'production'], { env })).stdout).toBe(
    'equal DIFFERS\nequal ONLY_STAGING\nequal SHARED\n',
  );

  const busy = await cli(['env', 'delete', 'staging'], { env });
  expect(busy.code).toBe(8);
  expect(busy.stderr).toContain('still holds 3 active secrets');
  for (const k of ['SHARED', 'DIFFERS', 'ONLY_STAGING']) {
    const removed = await api(t).req('DELETE', `/api/environments/staging/secrets/${k}`);
    expect(removed.statusCode, removed.body).toBe(200);
  }
  expect((await cli(['env', 'delete', 'staging'], { env })).code).toBe(0);
  expect((await cli(['env', 'list'], { env })).stdout).toBe('default\nproduction\n');
});

it('--env, SECRETS_ENV and the login profile pick the environment of every command', async () => {
  await createEnv('staging');
  const [def, stg] = [secretValue('default'), secretValue('staging')];
  // Each command is its own process reading only what the ones before it wrote: the two
  // writes, then every read, side by side.
  const sets = await Promise.all([
    cli(['set', 'APP_KEY'], { env, input: def }),
    cli(['set', 'APP_KEY', '--env', 'staging'], { env, input: stg }),
  ]);
  expect(sets.map((r) => r.code)).toEqual([0, 0]);
  const [plain, flag, flagFirst, fromEnv, emptyEnv, exported, run, nowhere, badName] = await Promise.all([
    cli(['get', 'APP_KEY'], { env }),
    cli(['get', 'APP_KEY', '--env', 'staging'], { env }),
    cli(['--env', 'staging', 'get', 'APP_KEY'], { env }),
    cli(['get', 'APP_KEY'], { env: { ...env, SECRETS_ENV: 'staging' } }),
    cli(['get', 'APP_KEY'], { env: { ...env, SECRETS_ENV: '' } }),
    cli(['export', '--format', 'json', '--env', 'staging'], { env }),
    cli(['run', '--env', 'staging', '--', 'sh', '-c', 'printf %s "$APP_KEY"'], { env }),
    cli(['get', 'APP_KEY', '--env', 'nowhere'], { env }),
    cli(['get', 'APP_KEY', '--env', 'No'], { env }),
  ]);
  expect(plain.stdout).toBe(def);
  expect(flag.stdout).toBe(stg);
  expect(flagFirst.stdout).toBe(stg);
  expect(fromEnv.stdout).toBe(stg);
  // An empty SECRETS_ENV is no setting.
  expect(emptyEnv.stdout).toBe(def);
  expect(JSON.parse(exported.stdout)).toEqual({ APP_KEY: stg });
  expect(run).toMatchObject({ code: 0, stdout: stg });
  expect(nowhere.code).toBe(6);
  expect(badName.code).toBe(2);

  // The profile remembers an environment; a flag still wins.
  const { SECRETS_TOKEN: token, ...noToken } = env;
  const login = await cli(['login', '--env', 'staging', '--token-stdin'], {
    env: noToken,
    input: `${token}\n`,
  });
  expect(login.code, login.stderr).toBe(0);
  const profiles = JSON.parse(await readFile(join(home, 'secrets-service', 'profiles.json'), 'utf8'));
  expect(profiles.profiles.default.environment).toBe('staging');
  const [profiled, overridden] = await Promise.all([
    cli(['get', 'APP_KEY'], { env: noToken }),
    cli(['get', 'APP_KEY', '--env', 'default'], { env: noToken }),
  ]);
  expect(profiled.stdout).toBe(stg);
  expect(overridden.stdout).toBe(def);
});

it('an access key for staging gets exit code 5 for production, naming nothing there', async () => {
  await createEnv('staging');
  await createEnv('production');
  await put('production', 'PROD_ONLY', secretValue());
  const k = await createAccessKey(t, { scopes: ['secrets:read', 'secrets:list'], environments: ['staging'] });
  const keyEnv = { SECRETS_URL: t.url, SECRETS_TOKEN: k.token, XDG_CONFIG_HOME: home };
  const [list, envs] = await Promise.all([
    cli(['list', '--env', 'production'], { env: keyEnv }),
    cli(['env', 'list'], { env: keyEnv }),
  ]);
  expect(list.code).toBe(5);
  expect(list.stderr).toContain('does not cover the environment production');
  expect(list.stderr).not.toContain('PROD_ONLY');
  expect(envs.stdout).toBe('staging\n');
});
