import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dotenvQuote } from '../../src/secrets/export-format.js';
import { ALPHABETS, generateValue } from '../../src/secrets/generate.js';
import { createAccessKey } from '../helpers/access-keys.js';
import { cli } from '../helpers/cli.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * Issue 25's list of CLI friction, found by trying the CLI as a new user would: each
 * mistake gets a message that says what is wrong and what to do.
 */
let t: TestServer;
let home: string;
let notHttp: Server;
let notHttpPort: number;
beforeAll(async () => {
  t = await createTestServer();
  home = await mkdtemp(join(tmpdir(), 'secrets-friction-'));
  // A port that speaks something else (as PostgreSQL or Redis would): it answers garbage.
  notHttp = createServer((s) => s.end('-ERR unknown command\r\n'));
  await new Promise<void>((r) => notHttp.listen(0, '127.0.0.1', r));
  notHttpPort = (notHttp.address() as AddressInfo).port;
});
afterAll(async () => {
  await t?.close();
  notHttp?.close();
  await rm(home, { recursive: true, force: true });
});

it('global options are accepted after the command too (login --profile ci --token-stdin)', async () => {
  const login = await cli(['login', '--profile', 'ci', '--token-stdin', '--url', t.url], {
    env: { HOME: home },
    input: `${t.token('ci-bot')}\n`,
  });
  expect(login.stderr).toContain('profile ci saved');
  expect(login.code).toBe(0);
  const who = await cli(['whoami', '--profile', 'ci'], { env: { HOME: home } });
  expect(who).toMatchObject({ code: 0 });
  expect(who.stdout).toContain('admin ci-bot');
  // Before the command, as before; run's pass-through after its command is intact.
  await t.client.setSecret('FRICTION_X', 'v');
  const run = await cli(['run', '--profile', 'ci', '--', 'sh', '-c', 'echo "$FRICTION_X" --profile'], {
    env: { HOME: home },
  });
  expect(run).toMatchObject({ code: 0, stdout: 'v --profile\n' });
  expect((await cli(['--profile', 'ci', 'get', 'FRICTION_X'], { env: { HOME: home } })).stdout).toBe('v');
});

it('https:// against a plain-HTTP server says to use http://', async () => {
  const url = t.url.replace('http://', 'https://');
  const res = await cli(['list'], { env: { HOME: home, SECRETS_URL: url, SECRETS_TOKEN: t.token() } });
  expect(res.code).toBe(3);
  expect(res.stderr).toContain('does not speak TLS');
  expect(res.stderr).toContain(`use ${t.url}`);
});

it('a port that is not the service says so', async () => {
  const res = await cli(['list'], {
    env: { HOME: home, SECRETS_URL: `http://127.0.0.1:${notHttpPort}`, SECRETS_TOKEN: t.token() },
  });
  expect(res.code).toBe(3);
  expect(res.stderr).toContain('not the secrets service over HTTP; check the port');
});

it('a URL ending in /console (or /docs) is a usage error naming the base URL, not "no such secret"', async () => {
  for (const page of ['/console', '/console/secrets', '/docs']) {
    const res = await cli(['get', 'X'], {
      env: { HOME: home, SECRETS_URL: `${t.url}${page}`, SECRETS_TOKEN: t.token() },
    });
    expect(res.code, page).toBe(2);
    expect(res.stderr).toContain(`give the server's base URL, e.g. ${t.url}`);
  }
});

it('a revoked access key is told to get a new one, not to log in again', async () => {
  const key = await createAccessKey(t, { scopes: ['secrets:read'] });
  await t.client.api.DELETE('/api/access-keys/{id}', { params: { path: { id: key.id } } });
  const res = await cli(['get', 'X'], { env: { HOME: home, SECRETS_URL: t.url, SECRETS_TOKEN: key.token } });
  expect(res.code).toBe(4);
  expect(res.stderr).toContain('was revoked');
  expect(res.stderr).toContain('an admin creates a new access key');
  expect(res.stderr).not.toContain('log in with secrets login');
});

it('a command that does not exist: "command not found", exit 127', async () => {
  const res = await cli(['run', '--', 'no-such-command-xyz'], {
    env: { HOME: home, SECRETS_URL: t.url, SECRETS_TOKEN: t.token() },
  });
  expect(res.code).toBe(127);
  expect(res.stderr).toContain('command not found: no-such-command-xyz');
  expect(res.stderr).not.toContain('ENOENT');
});

it('every value of every alphabet can be exported as dotenv; ensure --alphabet ascii then export works', async () => {
  // The characters that could make a value unrepresentable are not in any alphabet.
  for (const [name, chars] of Object.entries(ALPHABETS)) {
    expect(chars.includes("'") && /["$`\\]/.test(chars), name).toBe(false);
    expect(chars.includes('\\'), name).toBe(false);
    for (let i = 0; i < 200; i++) {
      expect(
        dotenvQuote(generateValue({ alphabet: name as keyof typeof ALPHABETS, length: 64 })),
      ).toBeDefined();
    }
  }
  const env = { HOME: home, SECRETS_URL: t.url, SECRETS_TOKEN: t.token() };
  for (let i = 0; i < 5; i++) {
    expect(
      (await cli(['ensure', `ASCII_${i}`, '--generate', '--alphabet', 'ascii', '--length', '256'], { env }))
        .code,
    ).toBe(0);
  }
  const exported = await cli(['export', '--prefix', 'ASCII_'], { env });
  expect(exported.stderr).toBe('');
  expect(exported.code).toBe(0);
  expect(exported.stdout.split('\n').filter(Boolean)).toHaveLength(5);
});

it('a URL that redirects (a proxy sending http to https) names where to, and sends the credential nowhere else', async () => {
  const { createServer: httpServer } = await import('node:http');
  let authorizations = 0;
  const redirector = httpServer((req, res) => {
    if (req.headers.authorization) authorizations++;
    res.writeHead(301, { location: `https://secrets.example.com${req.url}` }).end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  try {
    const port = (redirector.address() as AddressInfo).port;
    const res = await cli(['get', 'X'], {
      env: { HOME: home, SECRETS_URL: `http://127.0.0.1:${port}`, SECRETS_TOKEN: t.token() },
    });
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('redirects (HTTP 301) to https://secrets.example.com: use that base URL');
    expect(authorizations).toBe(1);
  } finally {
    redirector.close();
  }
});
