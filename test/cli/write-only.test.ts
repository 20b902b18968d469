import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSecretsClient } from '../../src/client/index.js';
import { createAccessKey } from '../helpers/access-keys.js';
import { type CliResult, cli, cliStderr } from '../helpers/cli.js';
import { capturedLogs, issuedValues, secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * Issue 24 through the compiled CLI: `ensure --generate --write-only` provisions a value no
 * person has seen, `secrets run` hands it to a child process with an access key holding
 * secrets:inject, and no command (get, export, run without the scope, ensure, set) prints it,
 * nor does any log line. `get` fails with its own exit code (10) and says how workloads
 * receive the value.
 */
let t: TestServer;
let tmp: string;
let env: Record<string, string>;
let provisioner: string;
let injector: string;
let reader: string;
const outputs: CliResult[] = [];
const run = async (args: string[], o: { token?: string; input?: string } = {}) => {
  const r = await cli(args, {
    env: { ...env, ...(o.token ? { SECRETS_TOKEN: o.token } : {}) },
    ...(o.input !== undefined ? { input: o.input } : {}),
  });
  outputs.push(r);
  return r;
};

beforeAll(async () => {
  t = await createTestServer({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
  tmp = await mkdtemp(join(tmpdir(), 'secrets-cli-wo-'));
  env = {
    SECRETS_URL: t.url,
    SECRETS_TOKEN: t.token('cli-admin'),
    XDG_CONFIG_HOME: join(tmp, 'config'),
    HOME: tmp,
  };
  // CI's provisioning key may write, not read; the workload's key reads with inject.
  provisioner = (await createAccessKey(t, { scopes: ['secrets:write'], keys: ['APP_*'] })).token;
  injector = (await createAccessKey(t, { scopes: ['secrets:read', 'secrets:inject'], keys: ['APP_*'] }))
    .token;
  reader = (await createAccessKey(t, { scopes: ['secrets:read'], keys: ['APP_*'] })).token;
});
afterAll(async () => {
  await t?.close();
  await rm(tmp, { recursive: true, force: true });
});

it('a generated write-only value reaches a child through `secrets run` with secrets:inject, and is printed nowhere', async () => {
  const created = await run(['ensure', 'APP_DB_PASSWORD', '--generate', '--length', '48', '--write-only'], {
    token: provisioner,
  });
  expect(created).toMatchObject({ code: 0, stdout: '' });
  expect(created.stderr).toContain('created APP_DB_PASSWORD (generated, write-only)');
  const again = await run(['ensure', 'APP_DB_PASSWORD', '--generate', '--write-only'], {
    token: provisioner,
  });
  expect(again.code).toBe(0);
  expect(again.stderr).toContain('APP_DB_PASSWORD exists: unchanged');

  // The child writes what it received to a file: nothing goes through any CLI output.
  const out = join(tmp, 'received');
  const ran = await run(
    ['run', '--prefix', 'APP_', '--', 'sh', '-c', 'printf %s "$APP_DB_PASSWORD" > "$0"', out],
    { token: injector },
  );
  expect(ran).toMatchObject({ code: 0, stdout: '', stderr: '' });
  const received = await readFile(out, 'utf8');
  expect(received).toMatch(/^[A-Za-z0-9_-]{48}$/);
  // From now on the suite's scans (every CLI stderr, every server log line) look for it.
  issuedValues.add(received);
  // It is the stored value: the same credential's export (through the API) agrees.
  const viaApi = await createSecretsClient({ baseUrl: t.url, token: injector }).exportSecrets('APP_');
  expect(viaApi.APP_DB_PASSWORD).toBe(received);

  // Nobody else gets it: get (admin, reader, injector), export and run without the scope.
  for (const token of [env.SECRETS_TOKEN, reader, injector]) {
    const get = await run(['get', 'APP_DB_PASSWORD'], { token });
    expect(get.code).toBe(10);
    expect(get.stdout).toBe('');
    expect(get.stderr).toContain('APP_DB_PASSWORD is write-only');
    expect(get.stderr).toContain('secrets:inject');
  }
  const exported = await run(['export', '--prefix', 'APP_'], { token: reader });
  expect(exported.code).toBe(5);
  expect(exported.stderr).toContain('APP_DB_PASSWORD');
  const adminRun = await run(['run', '--prefix', 'APP_', '--', 'sh', '-c', 'printf %s "$APP_DB_PASSWORD"']);
  expect(adminRun.code).toBe(5);
  expect(adminRun.stderr).toContain('an admin token never receives write-only values');

  const contradiction = await run(['ensure', 'APP_X', '--generate', '--write-only', '--print']);
  expect(contradiction.code).toBe(2);

  for (const r of outputs) {
    expect(r.stdout).not.toContain(received);
    expect(r.stderr).not.toContain(received);
  }
  expect(cliStderr.filter((s) => s.includes(received))).toEqual([]);
  expect(capturedLogs.filter((l) => l.includes(received))).toEqual([]);
  // Every delivery and refusal left its row; the value is in none of them.
  const rows = await t.db.query<{ action: string; outcome: string; n: number }>(
    `SELECT action, outcome, count(*)::int AS n FROM audit_log WHERE key = 'APP_DB_PASSWORD'
     GROUP BY action, outcome ORDER BY action, outcome`,
  );
  expect(rows).toEqual([
    { action: 'secret.create', outcome: 'conflict', n: 1 },
    { action: 'secret.create', outcome: 'success', n: 1 },
    { action: 'secret.export', outcome: 'denied', n: 2 },
    { action: 'secret.export', outcome: 'success', n: 2 },
    { action: 'secret.read', outcome: 'denied', n: 3 },
  ]);
});

it('set --write-only from stdin: created, repeatable by the same access key, and get refuses it', async () => {
  const v1 = secretValue('set1');
  const first = await run(['set', 'APP_API_TOKEN', '--write-only'], { token: provisioner, input: v1 });
  expect(first.code).toBe(0);
  expect(first.stderr).toContain('created APP_API_TOKEN (write-only)');
  const v2 = secretValue('set2');
  const second = await run(['set', 'APP_API_TOKEN', '--write-only'], { token: provisioner, input: v2 });
  expect(second.code).toBe(0);
  expect(second.stderr).toContain('updated APP_API_TOKEN (write-only)');
  const viaApi = await createSecretsClient({ baseUrl: t.url, token: injector }).exportSecrets('APP_API');
  expect(viaApi).toEqual({ APP_API_TOKEN: v2 });
  const get = await run(['get', 'APP_API_TOKEN']);
  expect(get.code).toBe(10);

  // Making a readable secret write-only is an admin's decision.
  await t.client.setSecret('APP_PLAIN', secretValue('plain'));
  const refused = await run(['set', 'APP_PLAIN', '--write-only'], {
    token: provisioner,
    input: secretValue('p2'),
  });
  expect(refused.code).toBe(5);
  const byAdmin = await run(['set', 'APP_PLAIN', '--write-only'], { input: secretValue('p3') });
  expect(byAdmin.code).toBe(0);
  expect((await run(['get', 'APP_PLAIN'])).code).toBe(10);
  const list = JSON.parse((await run(['list', '--prefix', 'APP_', '--json'])).stdout) as {
    key: string;
    isWriteOnly: boolean;
  }[];
  expect(list.every((s) => s.isWriteOnly)).toBe(true);
});
