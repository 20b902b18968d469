import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { CLI_ARGS } from '../helpers/cli.js';
import { secretValue, trackValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * The GitHub Action's fetch step (scripts/action/fetch-secrets.mjs), run as action.yml runs
 * it: against a real server with an access key read from SECRETS_TOKEN_FILE, the `secrets`
 * CLI (compiled) as the command, GITHUB_ENV and GITHUB_OUTPUT as files.
 */
const SCRIPT = fileURLToPath(new URL('../../scripts/action/fetch-secrets.mjs', import.meta.url));
let t: TestServer;
let tmp: string;
let wrapper: string;
beforeAll(async () => {
  t = await createTestServer();
  tmp = await mkdtemp(join(tmpdir(), 'secrets-action-'));
  wrapper = join(tmp, 'secrets');
  await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI_ARGS[0]}" "$@"\n`);
  await chmod(wrapper, 0o755);
});
afterAll(async () => {
  await t?.close();
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(async () => t.reset());

async function runStep(env: Record<string, string>) {
  const files = {
    GITHUB_ENV: join(tmp, `env-${Math.random()}`),
    GITHUB_OUTPUT: join(tmp, `out-${Math.random()}`),
  };
  await writeFile(files.GITHUB_ENV, '');
  await writeFile(files.GITHUB_OUTPUT, '');
  const child = spawn(process.execPath, [SCRIPT], {
    env: { PATH: process.env.PATH ?? '', SECRETS_CLI: wrapper, GITHUB_ACTIONS: 'true', ...files, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return {
    code,
    stdout,
    stderr,
    env: await readFile(files.GITHUB_ENV, 'utf8'),
    output: await readFile(files.GITHUB_OUTPUT, 'utf8'),
  };
}

/** Parses NAME<<DELIM\nvalue\nDELIM\n blocks as the runner does. */
function parseHeredocs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /^([A-Za-z_][A-Za-z0-9_]*)<<(\S+)\n([\s\S]*?)\n\2\n/gm;
  for (const m of text.matchAll(re)) out[m[1] as string] = m[3] as string;
  return out;
}

it('masks every value, then writes it to GITHUB_ENV and GITHUB_OUTPUT, with an access key from a file', async () => {
  const db = secretValue('db');
  const multi = trackValue(`${secretValue('pem')}\n-----END-----\n`);
  await t.client.setSecret('CI_DB_PASSWORD', db);
  await t.client.setSecret('CI_TLS_KEY', multi);
  const key = await createAccessKey(t, { scopes: ['secrets:read'], keys: ['CI_*'] });
  const tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, key.token, { mode: 0o600 });

  const r = await runStep({
    SECRETS_URL: t.url,
    SECRETS_TOKEN_FILE: tokenFile,
    INPUT_SECRETS: 'CI_DB_PASSWORD,\nCI_TLS_KEY',
  });
  expect(r.code).toBe(0);
  const masks = r.stdout.split('\n').filter((l) => l.startsWith('::add-mask::'));
  expect(masks).toContain(`::add-mask::${db}`);
  expect(masks).toContain(`::add-mask::${multi.split('\n')[0]}`);
  expect(masks).toContain('::add-mask::-----END-----');
  // Masks come before anything else is written, and no value appears unmasked on stdout.
  const visible = r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
  expect(visible).not.toContain(db);
  expect(r.stderr).toBe('');
  expect(parseHeredocs(r.env)).toEqual({ CI_DB_PASSWORD: db, CI_TLS_KEY: multi });
  expect(parseHeredocs(r.output)).toEqual({ CI_DB_PASSWORD: db, CI_TLS_KEY: multi });

  const envOnly = await runStep({
    SECRETS_URL: t.url,
    SECRETS_TOKEN_FILE: tokenFile,
    INPUT_SECRETS: 'CI_DB_PASSWORD',
    INPUT_OUTPUTS: 'false',
  });
  expect(envOnly.code).toBe(0);
  expect(envOnly.output).toBe('');
  expect(parseHeredocs(envOnly.env)).toEqual({ CI_DB_PASSWORD: db });
});

it('fails the step naming the key: out of the access key scope, deny-listed, or missing', async () => {
  await t.client.setSecret('OTHER_KEY', secretValue('o'));
  const key = await createAccessKey(t, { scopes: ['secrets:read'], keys: ['CI_*'] });
  const tokenFile = join(tmp, 'token2');
  await writeFile(tokenFile, key.token, { mode: 0o600 });
  const base = { SECRETS_URL: t.url, SECRETS_TOKEN_FILE: tokenFile };

  const outside = await runStep({ ...base, INPUT_SECRETS: 'OTHER_KEY' });
  expect(outside.code).toBe(1);
  expect(outside.stdout).toContain('::error::secrets get OTHER_KEY failed (exit 5)');
  expect(outside.env).toBe('');

  const denied = await runStep({ ...base, INPUT_SECRETS: 'PATH' });
  expect(denied.code).toBe(1);
  expect(denied.stdout).toContain('::error::PATH is on the deny-list');

  const missing = await runStep({ ...base, INPUT_SECRETS: 'CI_NOT_THERE' });
  expect(missing.code).toBe(1);
  expect(missing.stdout).toContain('exit 6');
});
