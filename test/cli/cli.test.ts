import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { loadMigrations } from '../../src/db/migrate.js';
import { buildPgliteImage } from '../../src/db/pglite-image.mjs';
import { cli, cliStderr, startCli } from '../helpers/cli.js';
import { issuedValues, secretValue, trackValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let env: Record<string, string>;
let tmp: string;
beforeAll(async () => {
  t = await createTestServer();
  env = { SECRETS_URL: t.url, SECRETS_TOKEN: t.token('cli-test') };
  tmp = await mkdtemp(join(tmpdir(), 'secrets-cli-'));
});
afterAll(async () => {
  await t?.close();
  await rm(tmp, { recursive: true, force: true });
  // No value made in this file ever reached the CLI's stderr.
  const leaks = [...issuedValues].filter((v) => cliStderr.some((s) => s.includes(v)));
  expect(leaks).toEqual([]);
});
beforeEach(async () => t.reset());

it('set (stdin, --file), get, list, delete: values only on stdout, only from get', async () => {
  const v1 = secretValue('stdin');
  const set = await cli(['set', 'CLI_ONE'], { env, input: `${v1}\n` });
  expect(set).toMatchObject({ code: 0, stdout: '' });
  expect(set.stderr).toContain('created CLI_ONE');
  const get = await cli(['get', 'CLI_ONE'], { env });
  expect(get).toMatchObject({ code: 0, stdout: v1 }); // trailing newline of stdin dropped, none added

  const v2 = trackValue(`${secretValue('file')}\n`);
  const file = join(tmp, 'value.txt');
  await writeFile(file, v2);
  expect((await cli(['set', 'CLI_ONE', '--file', file, '--raw'], { env })).stderr).toContain(
    'updated CLI_ONE',
  );
  expect((await cli(['get', 'CLI_ONE'], { env })).stdout).toBe(v2);

  await cli(['set', 'OTHER_TWO'], { env, input: secretValue('two') });
  const list = await cli(['list', '--prefix', 'CLI_'], { env });
  expect(list).toMatchObject({ code: 0, stdout: 'CLI_ONE\n' });
  const del = await cli(['delete', 'OTHER_TWO'], { env });
  expect(del).toMatchObject({ code: 0, stdout: '' });
  expect((await cli(['list'], { env })).stdout).toBe('CLI_ONE\n');
  // newest first, as the API lists them
  expect((await cli(['list', '--all'], { env })).stdout).toBe('OTHER_TWO\t(inactive)\nCLI_ONE\n');
});

it('refuses an empty value and a bad key with exit code 2, and takes no value from argv', async () => {
  expect(await cli(['set', 'EMPTY'], { env, input: '\n' })).toMatchObject({ code: 2 });
  expect((await cli(['get', 'lower'], { env })).code).toBe(2);
  const extra = await cli(['set', 'K', 'the-value'], { env, input: 'x' });
  expect(extra.code).toBe(2);
  expect(extra.stderr).toContain('not taken from the command line');
  expect(extra.stderr).not.toContain('the-value');
});

it('maps every failure to its exit code and a message on stderr', async () => {
  const unreachable = `http://127.0.0.1:${await freePort()}`;
  const viewer = t.token('viewer', { role: 'viewer' });
  const [down, noToken, badToken, forbidden, missing] = await Promise.all([
    cli(['list'], { env: { SECRETS_URL: unreachable, SECRETS_TOKEN: 'x' } }),
    cli(['list'], { env: { SECRETS_URL: t.url } }),
    cli(['list'], { env: { SECRETS_URL: t.url, SECRETS_TOKEN: 'not-a-jwt' } }),
    cli(['export'], { env: { SECRETS_URL: t.url, SECRETS_TOKEN: viewer } }),
    cli(['get', 'NOT_THERE'], { env }),
  ]);
  expect(down.code).toBe(3);
  expect(down.stderr).toContain('cannot reach');
  expect(noToken.code).toBe(4);
  expect(noToken.stderr).toContain('secrets login');
  expect(badToken.code).toBe(4);
  expect(forbidden.code).toBe(5);
  expect(missing.code).toBe(6);
  expect(missing.stderr).toContain('Secret not found: NOT_THERE');
  for (const r of [down, noToken, badToken, forbidden, missing]) expect(r.stdout).toBe('');

  // 429 comes from the service's rate limits or a gateway in front of it; a stand-in gateway
  // answers with the service's error body and Retry-After.
  const gateway = await listen(
    createServer((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: 'RATE_LIMITED', message: 'Too many requests', statusCode: 429 }));
    }),
  );
  const limited = await cli(['get', 'ANY'], { env: { ...env, SECRETS_URL: gateway.url } });
  gateway.server.close();
  expect(limited.code).toBe(7);
  expect(limited.stderr).toContain('retry after 7 s');

  await cli(['set', 'DUP'], { env, input: 'x' });
  expect((await cli(['get', 'DUP', '--bogus'], { env })).code).toBe(2);
  expect((await cli(['nonsense'], { env })).code).toBe(2);
});

it('export: dotenv parses back with the dotenv package, shell with sh eval, json as is', async () => {
  const values: Record<string, string> = {
    EX_QUOTES: trackValue("it's single-quoted"),
    EX_NEWLINE: trackValue('first\nsecond\n'),
    EX_DOLLAR: trackValue('$HOME $(id) `id` # hash \\ backslash'),
    EX_UNICODE: trackValue('日本語 🔑 ünïcödé'),
  };
  for (const [k, v] of Object.entries(values)) await cli(['set', k, '--raw'], { env, input: v });
  await cli(['set', 'NOT_EX'], { env, input: 'other' });

  const dotenv = await cli(['export', '--prefix', 'EX_'], { env });
  expect(dotenv.code).toBe(0);
  expect(parseDotenv(dotenv.stdout)).toEqual(values);
  const json = await cli(['export', '--prefix', 'EX_', '--format', 'json'], { env });
  expect(JSON.parse(json.stdout)).toEqual(values);
  const shell = await cli(['export', '--prefix', 'EX_', '--format', 'shell'], { env });
  const keys = Object.keys(values);
  const out = execFileSync(
    'sh',
    ['-c', `eval "$1"; printf '%s\\0' ${keys.map((k) => `"$${k}"`).join(' ')}`, 'sh', shell.stdout],
    { encoding: 'utf8', env: {} },
  );
  expect(out.split('\0').slice(0, -1)).toEqual(Object.values(values));
  expect((await cli(['export', '--format', 'yaml'], { env })).code).toBe(2);
});

it('run: passes the secrets (not the token) in the environment and the exit code back', async () => {
  const v = secretValue('run');
  await cli(['set', 'RUN_VALUE'], { env, input: v });
  const r = await cli(
    [
      'run',
      '--',
      'sh',
      '-c',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
      'printf "%s|%s|" "$RUN_VALUE" "${SECRETS_TOKEN-unset}"; tr "\\0" " " < /proc/$PPID/cmdline; exit 42',
    ],
    { env },
  );
  expect(r.code).toBe(42);
  const [value, token, parentArgv] = r.stdout.split('|');
  expect(value).toBe(v);
  expect(token).toBe('unset');
  expect(parentArgv).toContain('run');
  expect(parentArgv).not.toContain(v); // the value is in no process's argv
  expect(r.stderr).toBe('');
  expect(
    (await cli(['run', '--prefix', 'NONE_', '--', 'sh', '-c', 'test -z "$RUN_VALUE"'], { env })).code,
  ).toBe(0);
  expect((await cli(['run', '--', 'definitely-not-a-command-xyz'], { env })).code).toBe(127);
});

// The commands are node processes that print "ready" only once their handlers are set:
// a shell script between its echo and its exec can miss a signal, which tests the shell.
const waiter = (onTerm: string) =>
  `process.on('SIGTERM', () => { ${onTerm} }); process.stdout.write('ready'); setInterval(() => {}, 1000);`;

it('run: forwards signals to the command and leaves as it did', async () => {
  // The command handles SIGTERM and exits 42: the CLI must forward the signal and pass 42 on.
  const handled = startCli(['run', '--', process.execPath, '-e', waiter('process.exit(42)')], { env });
  await waitFor(handled.child, 'ready');
  handled.child.kill('SIGTERM');
  expect((await handled.done).code).toBe(42);

  // The command dies of the signal: the CLI dies of the same signal.
  const killed = startCli(['run', '--', process.execPath, '-e', waiter('process.exit(1)')], { env });
  await waitFor(killed.child, 'ready');
  killed.child.kill('SIGINT');
  expect((await killed.done).signal).toBe('SIGINT');
});

it('--help works for the program and every command', async () => {
  const top = await cli(['--help']);
  expect(top.code).toBe(0);
  for (const c of ['get', 'set', 'list', 'delete', 'export', 'run', 'serve', 'migrate', 'token']) {
    expect(top.stdout).toContain(c);
  }
  expect(top.stdout).toContain('Exit codes');
  const helps = await Promise.all(['run', 'export', 'token'].map((c) => cli([c, '--help'])));
  for (const h of helps) expect(h).toMatchObject({ code: 0, stderr: '' });
  expect(helps[0]?.stdout).toContain('--prefix');
});

it('operator commands: token mints a token the server accepts; migrate and serve work on a data dir', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'secrets-cli-data-'));
  try {
    const opEnv = { JWT_SECRET: t.jwtSecret, DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    const tok = await cli(['token', '--sub', 'from-cli', '--ttl', '5m'], { env: opEnv });
    expect(tok.code).toBe(0);
    const listed = await cli(['list'], { env: { SECRETS_URL: t.url, SECRETS_TOKEN: tok.stdout.trim() } });
    expect(listed.code).toBe(0);

    // An empty DATA_DIR is made from the install-time image (npm ci made it; a no-op then),
    // which holds every migration already.
    await buildPgliteImage();
    const migrated = await cli(['migrate'], { env: { DATA_DIR: dataDir, LOG_LEVEL: 'warn' } });
    expect(migrated.code).toBe(0);
    const newest = (await loadMigrations()).at(-1)?.name;
    expect(migrated.stdout).toContain(`nothing to apply: the schema is up to date (`);
    expect(migrated.stdout).toContain(`the newest ${newest})`);

    const port = await freePort();
    const served = startCli(['serve', '--port', String(port), '--host', '127.0.0.1'], {
      env: { DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    });
    try {
      await waitFor(served.child, 'secrets service ready');
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      served.child.kill('SIGTERM');
    }
    expect((await served.done).code).toBe(0);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}, 240_000); // three child processes, two of them opening PGlite (tens of seconds on a loaded machine)

it('token where no key exists refuses, naming DATA_DIR and JWT_SECRET, and generates nothing', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'secrets-cli-nokeys-'));
  try {
    const refused = await cli(['token', '--sub', 'lost'], { env: { DATA_DIR: dataDir } });
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`${join(dataDir, 'keys', 'jwt.secret')} does not exist`);
    expect(refused.stderr).toContain(`DATA_DIR is ${dataDir}`);
    expect(refused.stderr).toContain('JWT_SECRET');
    expect(existsSync(join(dataDir, 'keys'))).toBe(false);
    // The key a server generated there is the one used.
    await mkdir(join(dataDir, 'keys'), { recursive: true });
    await writeFile(join(dataDir, 'keys', 'jwt.secret'), `${t.jwtSecret}\n`, { mode: 0o600 });
    const tok = await cli(['token', '--sub', 'found'], { env: { DATA_DIR: dataDir } });
    expect(tok.code).toBe(0);
    const listed = await cli(['list'], { env: { SECRETS_URL: t.url, SECRETS_TOKEN: tok.stdout.trim() } });
    expect(listed.code).toBe(0);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

async function listen(server: Server): Promise<{ server: Server; url: string }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function freePort(): Promise<number> {
  const { server } = await listen(createServer());
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

function waitFor(child: ReturnType<typeof startCli>['child'], text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const on = (d: Buffer | string) => {
      seen += d.toString();
      if (seen.includes(text)) resolve();
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.on('close', () => reject(new Error(`exited before printing ${text}: ${seen.slice(0, 500)}`)));
  });
}
