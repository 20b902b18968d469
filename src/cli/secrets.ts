#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createSecretsClient, type SecretsClient } from '../client/index.js';
import { toShell } from '../secrets/export-format.js';
import { describeError, EXIT, exitCodeFor, UsageError } from './exit-codes.js';
import { addOperatorCommands } from './operator.js';
import { readValue } from './read-value.js';
import { runWithEnv } from './run-command.js';

/**
 * The `secrets` CLI. API commands talk to a running server through the typed client,
 * configured by SECRETS_URL and SECRETS_TOKEN (or --url/--token). Values go to stdout,
 * and only from get, export and run; every message goes to stderr. Exit codes: exit-codes.ts.
 */

const KEY = /^[A-Z0-9_]{1,128}$/;
const PREFIX = /^[A-Z0-9_]{0,128}$/;

// ../../package.json from both src/cli (tsx) and dist/cli (the installed package).
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('secrets')
  .version(version, '-V, --version', 'print the version and exit')
  .description('Read and manage secrets in the secrets service (SECRETS_URL, SECRETS_TOKEN)')
  .addOption(new Option('--url <url>', 'server URL').env('SECRETS_URL').default('http://127.0.0.1:7130'))
  .addOption(
    new Option('--token <jwt>', 'admin token (prefer SECRETS_TOKEN: argv is visible to other users)').env(
      'SECRETS_TOKEN',
    ),
  )
  .addOption(new Option('--timeout <ms>', 'per-request timeout in milliseconds').default('30000'))
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `
Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 server unreachable, 4 unauthenticated (401),
5 forbidden (403), 6 not found (404), 7 rate limited (429), 8 other API error.
run exits with its command's code (128+n if signal n ended it).`,
  )
  .exitOverride();

function client(): SecretsClient {
  const o = program.opts<{ url: string; token?: string; timeout: string }>();
  return createSecretsClient({ baseUrl: o.url, token: o.token, timeoutMs: Number(o.timeout) || 30_000 });
}

function key(k: string): string {
  if (!KEY.test(k))
    throw new UsageError(`invalid key ${JSON.stringify(k)}: use A-Z, 0-9 and _ (e.g. STRIPE_API_KEY)`);
  return k;
}

function prefix(p: string | undefined): string | undefined {
  if (p !== undefined && !PREFIX.test(p)) throw new UsageError('--prefix may contain only A-Z, 0-9 and _');
  return p;
}

const status = (line: string) => process.stderr.write(`${line}\n`);

program
  .command('get')
  .description('print the value of KEY on stdout, exactly (no newline added)')
  .argument('<KEY>')
  .action(async (k: string) => {
    process.stdout.write(await client().getSecret(key(k)));
  });

program
  .command('set')
  .description('create KEY or give it a new value, read from stdin or --file (never from the command line)')
  .argument('<KEY>')
  .option('--file <path>', 'read the value from this file instead of stdin')
  .option('--raw', 'keep the bytes exactly (by default one trailing newline is dropped)')
  .action(async (k: string, o: { file?: string; raw?: boolean }) => {
    const name = key(k);
    const result = await client().setSecret(name, await readValue(o));
    status(`${result} ${name}`);
  });

program
  .command('list')
  .description('print the keys of active secrets, one a line (metadata only, never values)')
  .option('--prefix <prefix>', 'only keys starting with this')
  .option('--all', 'include inactive (deleted) secrets')
  .option('--json', 'print the full metadata as JSON')
  .action(async (o: { prefix?: string; all?: boolean; json?: boolean }) => {
    const list = await client().listSecrets({
      ...(o.prefix ? { prefix: prefix(o.prefix)! } : {}),
      ...(o.all ? {} : { active: true }),
    });
    if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else for (const s of list) process.stdout.write(`${s.key}${s.isActive ? '' : '\t(inactive)'}\n`);
  });

program
  .command('delete')
  .description('delete KEY (soft delete: it can be re-created; reserved secrets are refused)')
  .argument('<KEY>')
  .action(async (k: string) => {
    const name = key(k);
    await client().deleteSecret(name);
    status(`deleted ${name}`);
  });

program
  .command('export')
  .description('print active secrets with their values, for a file or eval')
  .option('--prefix <prefix>', 'only keys starting with this')
  .addOption(
    new Option('--format <format>', 'dotenv, json, or shell (export K=... lines)')
      .choices(['dotenv', 'json', 'shell'])
      .default('dotenv'),
  )
  .action(async (o: { prefix?: string; format: 'dotenv' | 'json' | 'shell' }) => {
    const c = client();
    const p = prefix(o.prefix);
    if (o.format === 'dotenv') process.stdout.write(await c.exportDotenv(p));
    else if (o.format === 'json')
      process.stdout.write(`${JSON.stringify(await c.exportSecrets(p), null, 2)}\n`);
    else process.stdout.write(toShell(await c.exportSecrets(p)));
  });

program
  .command('run')
  .description('run a command with the active secrets in its environment; exits with its exit code')
  .option('--prefix <prefix>', 'only keys starting with this')
  .argument('<command>', 'the command (put -- before it)')
  .argument('[args...]', 'its arguments')
  .passThroughOptions()
  .action(async (command: string, args: string[], o: { prefix?: string }) => {
    const secrets = await client().exportSecrets(prefix(o.prefix));
    // The command gets the secrets, not the admin token that fetched them.
    process.exitCode = await runWithEnv(command, args, secrets, ['SECRETS_TOKEN']);
  });

addOperatorCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
    // commander already printed the message or the help text
    process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    process.stderr.write(`secrets: ${describeError(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
