#!/usr/bin/env node
// Step 2 of action.yml (and usable as a plain `run:` step): reads the secrets named in
// INPUT_SECRETS with the `secrets` CLI and hands them to later steps. Each value is first
// registered with ::add-mask:: (per line, so multi-line values are masked too), then
// written to GITHUB_ENV (INPUT_EXPORT_ENV, default true) and/or GITHUB_OUTPUT
// (INPUT_OUTPUTS, default true) in the heredoc form with a random delimiter that the value
// does not contain. The credential comes from SECRETS_TOKEN_FILE (written by the action
// with mode 0600), never from an environment variable later steps inherit.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Variables a later step must not receive from a secret (same list as `secrets run`).
const { isDeniedEnv } = await import(new URL('../../dist/cli/env-guard.js', import.meta.url).href);

const keys = (process.env.INPUT_SECRETS ?? '').split(/[\s,]+/).filter(Boolean);
const exportEnv = (process.env.INPUT_EXPORT_ENV ?? 'true') === 'true';
const setOutputs = (process.env.INPUT_OUTPUTS ?? 'true') === 'true';
const fail = (message) => {
  process.stdout.write(`::error::${message}\n`);
  process.exit(1);
};
if (!keys.length) fail('no secrets requested: set the secrets input to one or more keys');
for (const k of keys) {
  if (!/^[A-Z0-9_]{1,128}$/.test(k) || !KEY.test(k))
    fail(`${k} is not a key that can be an environment variable`);
  if (exportEnv && isDeniedEnv(k)) fail(`${k} is on the deny-list of variables a secret may not set`);
}

const escapeData = (s) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const values = new Map();
for (const key of keys) {
  // GITHUB_ACTIONS is cleared for the CLI: this script masks on stdout itself.
  const r = spawnSync(process.env.SECRETS_CLI ?? 'secrets', ['get', key], {
    encoding: 'utf8',
    env: { ...process.env, GITHUB_ACTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) fail(`secrets get ${key} failed (exit ${r.status ?? r.signal})`);
  const value = r.stdout;
  for (const part of new Set([value, ...value.split(/\r?\n/)])) {
    if (part.trim()) process.stdout.write(`::add-mask::${escapeData(part)}\n`);
  }
  values.set(key, value);
}

function heredoc(name, value) {
  let delim;
  do delim = `ghadelim_${randomBytes(12).toString('hex')}`;
  while (value.includes(delim));
  return `${name}<<${delim}\n${value}\n${delim}\n`;
}
for (const [key, value] of values) {
  if (exportEnv) appendFileSync(process.env.GITHUB_ENV ?? fail('GITHUB_ENV is not set'), heredoc(key, value));
  if (setOutputs)
    appendFileSync(process.env.GITHUB_OUTPUT ?? fail('GITHUB_OUTPUT is not set'), heredoc(key, value));
}
process.stdout.write(`exposed ${[...values.keys()].join(', ')}\n`);
