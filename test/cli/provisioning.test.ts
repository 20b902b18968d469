import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { cli, cliStderr, startCli } from '../helpers/cli.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/** The CLI's provisioning and session commands, and run's credential and environment rules. */
let t: TestServer;
let env: Record<string, string>;
let tmp: string;
beforeAll(async () => {
  t = await createTestServer();
  tmp = await mkdtemp(join(tmpdir(), 'secrets-cli-prov-'));
  // A fresh config home per file: the profile commands never touch the real one.
  env = {
    SECRETS_URL: t.url,
    SECRETS_TOKEN: t.token('cli-prov'),
    XDG_CONFIG_HOME: join(tmp, 'config'),
    HOME: tmp,
  };
});
afterAll(async () => {
  await t?.close();
  await rm(tmp, { recursive: true, force: true });
  const leaks = [...issuedValues].filter((v) => cliStderr.some((s) => s.includes(v)));
  expect(leaks).toEqual([]);
});
beforeEach(async () => t.reset());

const noToken = (e: Record<string, string>) => {
  const { SECRETS_TOKEN: _, ...rest } = e;
  return rest;
};

it('run with SECRETS_TOKEN_FILE or --token-stdin: the credential is in no environment or argv the child can read', async () => {
  const v = secretValue('run');
  await t.client.setSecret('RUN_VALUE', v);
  const token = t.token('file-user');
  const file = join(tmp, 'token');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  const probe = [
    'run',
    '--',
    'sh',
    '-c',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    'printf "%s|" "$RUN_VALUE" "${SECRETS_TOKEN_FILE-unset}"; tr "\\0" "\\n" < /proc/$PPID/environ; tr "\\0" " " < /proc/$PPID/cmdline',
  ];
  const viaFile = await cli(probe, { env: { ...noToken(env), SECRETS_TOKEN_FILE: file } });
  expect(viaFile.code).toBe(0);
  expect(viaFile.stdout.startsWith(`${v}|unset|`)).toBe(true);
  expect(viaFile.stdout).not.toContain(token);

  const viaStdin = await cli(['--token-stdin', ...probe], { env: noToken(env), input: `${token}\n` });
  expect(viaStdin.code).toBe(0);
  expect(viaStdin.stdout.startsWith(`${v}|`)).toBe(true);
  expect(viaStdin.stdout).not.toContain(token);

  const missing = await cli(['list'], { env: { ...noToken(env), SECRETS_TOKEN_FILE: join(tmp, 'nope') } });
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('cannot read the token file');
});

it('run refuses secrets that would set deny-listed variables unless --allow-env names each, and skips invalid names', async () => {
  const opts = secretValue('opts');
  await t.client.setSecret('NODE_OPTIONS', opts);
  // Not a tracked value: the dynamic loader names it on the child's stderr when it cannot load it.
  await t.client.setSecret('LD_PRELOAD', 'libnothing-here.so');
  await t.client.setSecret('APP_OK', secretValue('ok'));
  await t.client.setSecret('9LIVES', secretValue('nine'));
  const refused = await cli(['run', '--', 'sh', '-c', 'echo ran'], { env });
  expect(refused.code).toBe(9);
  expect(refused.stdout).toBe('');
  expect(refused.stderr).toContain('LD_PRELOAD, NODE_OPTIONS');
  expect(refused.stderr).toContain('--allow-env NODE_OPTIONS');

  const one = await cli(['run', '--allow-env', 'NODE_OPTIONS', '--', 'true'], { env });
  expect(one.code).toBe(9);
  expect(one.stderr).toContain('LD_PRELOAD');
  expect(one.stderr).not.toMatch(/refusing to set [^\n]*NODE_OPTIONS/);

  const allowed = await cli(
    [
      'run',
      '--allow-env',
      'NODE_OPTIONS',
      '--allow-env',
      'LD_PRELOAD',
      '--',
      'sh',
      '-c',
      'printf "%s" "$NODE_OPTIONS"; env | grep -c LIVES || true',
    ],
    { env },
  );
  expect(allowed.code).toBe(0);
  expect(allowed.stdout).toBe(`${opts}0\n`);
  expect(allowed.stderr).toContain('skipping 9LIVES: not a valid environment variable name');

  // The shell and dotenv exports skip the invalid name the same way.
  await t.client.deleteSecret('NODE_OPTIONS');
  await t.client.deleteSecret('LD_PRELOAD');
  for (const format of ['shell', 'dotenv']) {
    const out = await cli(['export', '--format', format], { env });
    expect(out.code).toBe(0);
    expect(out.stdout).not.toContain('9LIVES');
    expect(out.stdout).toContain('APP_OK=');
    expect(out.stderr).toContain('skipping 9LIVES');
  }
});

it('import: a dotenv file in one transaction, --dry-run by name, idempotent, all or nothing', async () => {
  const [a, b] = [secretValue('a'), `${secretValue('b')}\nsecond line`];
  issuedValues.add(b);
  const file = join(tmp, 'app.env');
  await writeFile(file, `# comment\nIMP_A=${a}\nIMP_B='${b}'\n`);
  const dry = await cli(['import', file, '--dry-run'], { env });
  expect(dry).toMatchObject({ code: 0, stdout: '' });
  expect(dry.stderr).toContain('would be created IMP_A');
  expect(dry.stderr).toContain('would be created IMP_B');
  expect((await t.client.listSecrets()).length).toBe(0);

  expect((await cli(['import', file], { env })).stderr).toContain('created IMP_B');
  expect(await t.client.getSecret('IMP_A')).toBe(a);
  expect(await t.client.getSecret('IMP_B')).toBe(b);
  const again = await cli(['import', file, '--format', 'json'], { env });
  expect(JSON.parse(again.stdout)).toEqual([
    { key: 'IMP_A', status: 'unchanged' },
    { key: 'IMP_B', status: 'unchanged' },
  ]);

  // JSON on stdin; one key outside an access key's patterns refuses the whole import.
  const k = await createAccessKey(t, { scopes: ['secrets:write'], keys: ['IMP_*'] });
  const json = JSON.stringify({ IMP_C: secretValue('c'), OTHER: secretValue('o') });
  const refused = await cli(['import', '-'], { env: { ...env, SECRETS_TOKEN: k.token }, input: json });
  expect(refused.code).toBe(5);
  expect(refused.stderr).toContain('OTHER');
  expect((await t.client.listSecrets()).map((s) => s.key).sort()).toEqual(['IMP_A', 'IMP_B']);

  const bad = await cli(['import', '-'], { env, input: 'lower=1\nEMPTY=\n' });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('lower: not a valid key');
  expect(bad.stderr).toContain('EMPTY: the value is empty');
});

it('ensure --generate creates once with a server-generated value and then changes nothing', async () => {
  const first = await cli(['ensure', 'DB_PASSWORD', '--generate', '--length', '40', '--alphabet', 'alnum'], {
    env,
  });
  expect(first).toMatchObject({ code: 0, stdout: '' });
  expect(first.stderr).toContain('created DB_PASSWORD');
  const value = await t.client.getSecret('DB_PASSWORD');
  expect(value).toMatch(/^[A-Za-z0-9]{40}$/);
  issuedValues.add(value);

  const second = await cli(['ensure', 'DB_PASSWORD', '--generate', '--print'], { env });
  expect(second.code).toBe(0);
  expect(second.stderr).toContain('DB_PASSWORD exists: unchanged');
  expect(second.stdout).toBe(value);
  expect(await t.client.getSecret('DB_PASSWORD')).toBe(value);

  expect((await cli(['ensure', 'X_KEY', '--generate', '--length', '8'], { env })).code).toBe(2);
  expect((await cli(['ensure', 'X_KEY'], { env })).code).toBe(2);
});

it('login stores an owner-only profile; whoami and logout use it; flag > environment > profile', async () => {
  const configHome = join(tmp, 'login-config');
  const base = { HOME: tmp, XDG_CONFIG_HOME: configHome };
  const k = await createAccessKey(t, { name: 'ci-job', scopes: ['secrets:read'], keys: ['CI_*'] });
  const login = await cli(['--url', t.url, '--token-stdin', 'login'], { env: base, input: `${k.token}\n` });
  expect(login.code).toBe(0);
  expect(login.stderr).toContain('access key ci-job');
  const file = join(configHome, 'secrets-service', 'profiles.json');
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect((await stat(join(configHome, 'secrets-service'))).mode & 0o777).toBe(0o700);
  expect(JSON.parse(await readFile(file, 'utf8')).profiles.default).toEqual({ url: t.url, token: k.token });
  expect(login.stderr).not.toContain(k.token);

  const who = await cli(['whoami'], { env: base });
  expect(who).toMatchObject({ code: 0 });
  expect(who.stdout).toContain(`access key ci-job (scopes: secrets:read; keys: CI_*) at ${t.url}`);
  // The environment wins over the profile, a flag over the environment.
  const envWins = await cli(['whoami', '--format', 'json'], {
    env: { ...base, SECRETS_TOKEN: t.token('env-admin') },
  });
  expect(JSON.parse(envWins.stdout)).toMatchObject({ kind: 'admin', name: 'env-admin' });
  const flagWins = await cli(['--token', t.token('flag-admin'), 'whoami', '--format', 'json'], {
    env: { ...base, SECRETS_TOKEN: t.token('env-admin') },
  });
  expect(JSON.parse(flagWins.stdout)).toMatchObject({ name: 'flag-admin' });

  // A second, named profile; a bad token is refused and not stored.
  const named = await cli(['--url', t.url, '--profile', 'ops', '--token-stdin', 'login'], {
    env: base,
    input: t.token('ops-admin'),
  });
  expect(named.code).toBe(0);
  expect((await cli(['--profile', 'ops', 'whoami'], { env: base })).stdout).toContain('admin ops-admin');
  const bad = await cli(['--url', t.url, '--profile', 'bad', '--token-stdin', 'login'], {
    env: base,
    input: 'nope',
  });
  expect(bad.code).toBe(4);
  expect(Object.keys(JSON.parse(await readFile(file, 'utf8')).profiles).sort()).toEqual(['default', 'ops']);

  expect((await cli(['logout'], { env: base })).stderr).toContain('profile default removed');
  const after = await cli(['whoami'], { env: { ...base, SECRETS_URL: t.url } });
  expect(after.code).toBe(4);
  expect((await cli(['--profile', 'missing', 'whoami'], { env: base })).code).toBe(2);
});

it('a malformed SECRETS_URL is a usage error with a hint; --version; masking in GitHub Actions', async () => {
  for (const [url, hint] of [
    ['127.0.0.1:7130', 'e.g. http://127.0.0.1:7130'],
    [`${t.url}/api`, `give the server's base URL, e.g. ${t.url}`],
    ['ftp://x', 'not an http(s) URL'],
  ]) {
    const r = await cli(['list'], { env: { ...env, SECRETS_URL: url as string } });
    expect(r.code, url).toBe(2);
    expect(r.stderr).toContain(hint);
  }
  const version = await cli(['--version']);
  expect(version.code).toBe(0);
  expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);

  const v = `${secretValue('mask')}%\nline two`;
  issuedValues.add(v.split('\n')[0] as string);
  await t.client.setSecret('MASKED', v);
  const get = await cli(['get', 'MASKED'], { env: { ...env, GITHUB_ACTIONS: 'true' } });
  expect(get.stdout).toBe(v);
  const masks = get.stderr.split('\n').filter((l) => l.startsWith('::add-mask::'));
  expect(masks).toEqual([
    `::add-mask::${v.replace('%', '%25').replace('\n', '%0A')}`,
    `::add-mask::${(v.split('\n')[0] as string).replace('%', '%25')}`,
    '::add-mask::line two',
  ]);
  cliStderr.pop(); // this stderr carries the masked value on purpose: not a leak
  const plain = await cli(['get', 'MASKED'], { env });
  expect(plain.stderr).toBe('');
  // run and export mask too
  const exp = await cli(['export', '--format', 'json'], { env: { ...env, GITHUB_ACTIONS: 'true' } });
  expect(exp.stderr).toContain('::add-mask::line two');
  cliStderr.pop();
});

it('dotenv export loads the same in the dotenv package and sh (set -a; . file)', async () => {
  const values = { DE_A: "it's", DE_B: '$HOME `id` \\n', DE_C: 'multi\nline' };
  for (const [k, v] of Object.entries(values)) await t.client.setSecret(k, v);
  const out = await cli(['export', '--prefix', 'DE_'], { env });
  expect(parseDotenv(out.stdout)).toEqual(values);
  const file = join(tmp, 'de.env');
  await writeFile(file, out.stdout);
  const sh = execFileSync(
    'sh',
    ['-c', `set -a; . "$1"; printf '%s\\0' "$DE_A" "$DE_B" "$DE_C"`, 'sh', file],
    {
      encoding: 'utf8',
      env: {},
    },
  );
  expect(sh.split('\0').slice(0, -1)).toEqual(Object.values(values));
});

function waitFor(child: ReturnType<typeof startCli>['child'], text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const on = (d: Buffer | string) => {
      seen += d.toString();
      if (seen.includes(text)) {
        child.stdout?.off('data', on);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.on('close', () => reject(new Error(`exited before printing ${text}`)));
  });
}

// Prints the value it was started with, and "hup" on SIGHUP; keeps running until SIGTERM.
const watcher = `process.on('SIGHUP', () => process.stdout.write('hup\\n'));
process.stdout.write('v:' + process.env.WATCHED + '\\n'); setInterval(() => {}, 1000);`;

it('run --watch restarts the command with the new value, or sends --signal instead', async () => {
  const [first, second, third] = [secretValue('w1'), secretValue('w2'), secretValue('w3')];
  await t.client.setSecret('WATCHED', first);
  const restart = startCli(['run', '--watch', '--interval', '0.3', '--', process.execPath, '-e', watcher], {
    env,
  });
  await waitFor(restart.child, `v:${first}`);
  await t.client.setSecret('WATCHED', second);
  await waitFor(restart.child, `v:${second}`);
  restart.child.kill('SIGTERM');
  expect((await restart.done).signal).toBe('SIGTERM');
  expect((await restart.done).stderr).toContain('a secret changed: restarting the command');

  const hup = startCli(
    ['run', '--watch', '--interval', '0.3', '--signal', 'SIGHUP', '--', process.execPath, '-e', watcher],
    { env },
  );
  await waitFor(hup.child, `v:${second}`);
  await t.client.setSecret('WATCHED', third);
  await waitFor(hup.child, 'hup');
  hup.child.kill('SIGTERM');
  const done = await hup.done;
  expect(done.stdout.match(/v:/g)).toHaveLength(1); // signalled, not restarted
  expect((await cli(['run', '--watch', '--signal', 'NOPE', '--', 'true'], { env })).code).toBe(2);
});

it('run --watch hears a change from the event stream without waiting for its poll', async () => {
  const [first, second] = [secretValue('s1'), secretValue('s2')];
  await t.client.setSecret('WATCHED', first);
  // An hour between polls: only the stream (GET /api/events) can tell it in time.
  const live = startCli(['run', '--watch', '--interval', '3600', '--', process.execPath, '-e', watcher], {
    env,
  });
  const following = new Promise<void>((resolve) => {
    let seen = '';
    live.child.stderr?.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('following changes live')) resolve();
    });
  });
  await waitFor(live.child, `v:${first}`);
  await following;
  await t.client.setSecret('WATCHED', second);
  await waitFor(live.child, `v:${second}`);
  live.child.kill('SIGTERM');
  expect((await live.done).stderr).toContain('a secret changed: restarting the command');
});

it('token in production needs only JWT_SECRET (no ENCRYPTION_KEY), and the server accepts it', async () => {
  const minted = await cli(['token', '--sub', 'prod-ci', '--ttl', '5m'], {
    env: { NODE_ENV: 'production', JWT_SECRET: t.jwtSecret, DATA_DIR: join(tmp, 'no-data-dir') },
  });
  expect(minted.code).toBe(0);
  const who = await cli(['whoami'], {
    env: { SECRETS_URL: t.url, SECRETS_TOKEN: minted.stdout.trim(), HOME: tmp },
  });
  expect(who.stdout).toContain('admin prod-ci');
});
