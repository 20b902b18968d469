import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { CLI_ARGS, cli, cliStderr } from '../helpers/cli.js';
import { githubClaims, kubernetesClaims, type LocalIssuer, startIssuer } from '../helpers/oidc-issuer.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * `--oidc`: CI without a stored credential. A GitHub-shaped workflow step (the runner's
 * ID-token endpoint played on loopback by the local issuer), a GitLab job (the token in
 * SECRETS_OIDC_TOKEN) and a Kubernetes pod (a projected token file), each running the
 * compiled CLI with no token and no profile.
 */
let t: TestServer;
let gh: LocalIssuer;
let k8s: LocalIssuer;
let home: string;
let value: string;
beforeAll(async () => {
  t = await createTestServer({ env: { OIDC_ALLOW_HTTP_ISSUERS: 'true' } });
  gh = await startIssuer({ path: '/gh' });
  k8s = await startIssuer({ path: '/k8s', alg: 'ES256' });
  home = await mkdtemp(join(tmpdir(), 'secrets-oidc-'));
});
afterAll(async () => {
  await t?.close();
  await gh?.close();
  await k8s?.close();
  await rm(home, { recursive: true, force: true });
  // No value reached stderr except in the runner's masking commands, which hide it.
  const unmasked = cliStderr.map((s) => s.replace(/^::add-mask::.*$/gm, ''));
  const leaks = [...issuedValues].filter((v) => unmasked.some((s) => s.includes(v)));
  expect(leaks).toEqual([]);
});
beforeEach(async () => {
  await t.reset();
  value = secretValue('oidc');
  await t.client.setSecret('X', value);
  await t.client.trusts.create({
    name: 'gh-deploy',
    issuer: gh.issuer,
    audiences: [t.url],
    subject: 'repo:acme/shop:ref:refs/heads/main',
    claims: { repository_id: '123456' },
    scopes: ['secrets:read', 'secrets:list'],
  });
});

/** What a GitHub Actions runner gives a job with `permissions: id-token: write`. */
const actionsEnv = () => ({
  HOME: home,
  SECRETS_URL: t.url,
  GITHUB_ACTIONS: 'true',
  ACTIONS_ID_TOKEN_REQUEST_URL: gh.actions.url,
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actions.requestToken,
});

it('a workflow step runs `secrets run --oidc -- printenv X` with no stored credential', async () => {
  gh.actions.requests.length = 0;
  const res = await cli(['run', '--oidc', '--', 'printenv', 'X'], { env: actionsEnv() });
  expect(res.stderr).not.toContain('error');
  expect(res).toMatchObject({ code: 0, stdout: `${value}\n` });
  // The ID token was requested for the server's URL as audience, and the issued credential
  // and the value were masked in the log.
  expect(gh.actions.requests).toEqual([{ audience: t.url }]);
  expect(res.stderr).toMatch(/::add-mask::iw_[0-9a-f]{64}/);
  expect(res.stderr).toContain(`::add-mask::${value}`);
  const rows = await t.db.query<{ actor: string; action: string }>(
    `SELECT actor, action FROM audit_log WHERE action IN ('auth.token_exchange', 'secret.export') ORDER BY id`,
  );
  expect(rows).toEqual([
    { actor: 'oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main', action: 'auth.token_exchange' },
    { actor: 'oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main', action: 'secret.export' },
  ]);
});

it('--oidc works before the command, from SECRETS_OIDC, and for get and export', async () => {
  expect(await cli(['--oidc', 'get', 'X'], { env: actionsEnv() })).toMatchObject({ code: 0, stdout: value });
  const exported = await cli(['export', '--format', 'json'], { env: { ...actionsEnv(), SECRETS_OIDC: '1' } });
  expect(exported.code).toBe(0);
  expect(JSON.parse(exported.stdout)).toEqual({ X: value });
});

it('a job whose branch the trust does not bind is refused (exit 5) with the reason', async () => {
  gh.actionsClaims = githubClaims('unused', {
    ref: 'refs/heads/feature',
    sub: 'repo:acme/shop:ref:refs/heads/feature',
  });
  try {
    const res = await cli(['run', '--oidc', '--', 'printenv', 'X'], { env: actionsEnv() });
    expect(res.code).toBe(5);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('matches no trust policy');
  } finally {
    gh.actionsClaims = githubClaims();
  }
});

it('GitLab (SECRETS_OIDC_TOKEN) and Kubernetes (SECRETS_OIDC_TOKEN_FILE) tokens', async () => {
  await t.client.trusts.create({
    name: 'k8s',
    issuer: k8s.issuer,
    audiences: ['secrets'],
    subject: 'system:serviceaccount:payments:*',
    scopes: ['secrets:read', 'secrets:list'],
  });
  const file = join(home, 'token');
  await writeFile(file, `${await k8s.sign(kubernetesClaims('secrets'))}\n`);
  const pod = await cli(['run', '--oidc', '--', 'printenv', 'X'], {
    env: { HOME: home, SECRETS_URL: t.url, SECRETS_OIDC_TOKEN_FILE: file },
  });
  expect(pod).toMatchObject({ code: 0, stdout: `${value}\n` });
  const gitlab = await cli(['get', 'X', '--oidc'], {
    env: {
      HOME: home,
      SECRETS_URL: t.url,
      SECRETS_OIDC_TOKEN: await k8s.sign(
        kubernetesClaims('secrets', { sub: 'system:serviceaccount:payments:ci' }),
      ),
    },
  });
  expect(gitlab).toMatchObject({ code: 0, stdout: value });
});

it('says what is missing when there is no ID token to exchange', async () => {
  const none = await cli(['run', '--oidc', '--', 'true'], { env: { HOME: home, SECRETS_URL: t.url } });
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('--oidc found no ID token');
  const noPermission = await cli(['get', 'X', '--oidc'], {
    env: { HOME: home, SECRETS_URL: t.url, ACTIONS_ID_TOKEN_REQUEST_URL: gh.actions.url },
  });
  expect(noPermission.code).toBe(2);
  expect(noPermission.stderr).toContain('permissions: id-token: write');
});

it('action.yml with oidc: true exposes the secret to later steps and leaves no credential behind', async () => {
  const step = fileURLToPath(new URL('../../scripts/action/fetch-step.sh', import.meta.url));
  const runnerTemp = await mkdtemp(join(home, 'runner-'));
  const wrapper = join(runnerTemp, 'secrets-cli');
  await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI_ARGS[0]}" "$@"\n`);
  await chmod(wrapper, 0o755);
  const githubEnv = join(home, 'github-env');
  await writeFile(githubEnv, '');
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      'bash',
      [step],
      {
        env: {
          PATH: process.env.PATH ?? '',
          ...actionsEnv(),
          RUNNER_TEMP: runnerTemp,
          SECRETS_CLI: wrapper,
          GITHUB_ENV: githubEnv,
          INPUT_OIDC: 'true',
          INPUT_SECRETS: 'X',
          INPUT_EXPORT_ENV: 'true',
          INPUT_OUTPUTS: 'false',
          ACCESS_KEY: '',
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  expect(out.stderr).not.toContain('error');
  expect(out.code).toBe(0);
  expect(out.stdout).toContain(`::add-mask::${value}`);
  expect(await readFile(githubEnv, 'utf8')).toMatch(new RegExp(`^X<<(ghadelim_[0-9a-f]+)\n${value}\n\\1\n$`));
  // The profile holding the short-lived credential went with the step.
  expect((await readdir(runnerTemp)).filter((f) => f.startsWith('secrets-oidc'))).toEqual([]);
});

it('secrets trust apply|list|delete manage the policies (admin), and delete stops the issued credentials', async () => {
  const admin = { HOME: home, SECRETS_URL: t.url, SECRETS_TOKEN: t.token('trust-admin') };
  const policy = {
    name: 'k8s-cli',
    issuer: k8s.issuer,
    audiences: ['secrets'],
    subject: 'system:serviceaccount:payments:*',
    scopes: ['secrets:read'],
  };
  const created = await cli(['trust', 'apply', '-'], { env: admin, input: JSON.stringify(policy) });
  expect(created).toMatchObject({ code: 0 });
  expect(created.stderr).toContain('created trust k8s-cli');
  const replaced = await cli(['trust', 'apply', '-'], {
    env: admin,
    input: JSON.stringify({ ...policy, ttlSeconds: 300 }),
  });
  expect(replaced.stderr).toContain('replaced trust k8s-cli');
  const list = await cli(['trust', 'list', '--format', 'json'], { env: admin });
  expect(
    JSON.parse(list.stdout).map((x: { name: string; ttlSeconds: number }) => `${x.name}:${x.ttlSeconds}`),
  ).toEqual(['gh-deploy:900', 'k8s-cli:300']);
  const bad = await cli(['trust', 'apply', '-'], {
    env: admin,
    input: JSON.stringify({ ...policy, audiences: [] }),
  });
  expect(bad.code).toBe(8);
  expect(bad.stderr).toContain('at least one audience');

  const pod = {
    HOME: home,
    SECRETS_URL: t.url,
    SECRETS_OIDC_TOKEN: await k8s.sign(kubernetesClaims('secrets')),
  };
  const login = await cli(['login', '--oidc', '--profile', 'pod'], { env: pod });
  expect(login.stderr).toContain('as workload oidc:k8s-cli:system:serviceaccount:payments:deployer');
  expect((await cli(['get', 'X', '--profile', 'pod'], { env: { HOME: home } })).stdout).toBe(value);
  expect((await cli(['trust', 'delete', 'k8s-cli'], { env: admin })).stderr).toContain(
    'deleted trust k8s-cli',
  );
  const after = await cli(['get', 'X', '--profile', 'pod'], { env: { HOME: home } });
  expect(after.code).toBe(4);
  expect(after.stderr).toContain('was deleted');
  expect(after.stderr).toContain('run again with --oidc');
});
