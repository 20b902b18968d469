import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { Command, Option } from 'commander';
import {
  type BatchEntry,
  createSecretsClient,
  type SecretsClient,
  type TrustPolicyInput,
} from '../client/index.js';
import { ENVIRONMENT_NAME_RULE, isEnvironmentName } from '../environment-names.js';
import { isKeyPrefix, isSecretKey } from '../secret-names.js';
import {
  checkUrl,
  type Profile,
  profilesPath,
  readProfiles,
  readTokenFile,
  readTokenStdin,
  removeProfile,
  saveProfile,
} from './credentials.js';
import { DeniedEnvError, envFromSecrets } from './env-guard.js';
import { describeError, EXIT, exitCodeFor, isWriteOnlyRefusal, UsageError } from './exit-codes.js';
import { readFile } from './fs.js';
import { httpFetch } from './http-fetch.js';
import { platformIdToken } from './oidc.js';
import { addOperatorCommands } from './operator.js';
import { type Format, formatValues, listing, maskForActions, table } from './output.js';
import { readValue } from './read-value.js';
import { resourceCommands } from './resource-commands.js';
import { runWatching, runWithEnv } from './run-command.js';
import { addWebhookCommands } from './webhooks.js';

/**
 * The `secrets` CLI. API commands talk to a running server through the typed client. The
 * server and credential come from flags, else the environment (SECRETS_URL, SECRETS_TOKEN,
 * SECRETS_TOKEN_FILE), else the login profile (credentials.ts). Values go to stdout, and
 * only from get, export and run; every message goes to stderr. Exit codes: exit-codes.ts.
 */

// ../../package.json from both src/cli (tsx) and dist/cli (the installed package).
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/**
 * The whole `secrets` program, built afresh on each call and parsing nothing: a test can
 * import it, and each call has its own option state. `main` runs it on argv.
 */
export function buildProgram(): Command {
  const program = new Command('secrets')
    .version(version, '-V, --version', 'print the version and exit')
    .description('Read and manage secrets in the secrets service')
    .addOption(new Option('--url <url>', 'server URL (default http://127.0.0.1:7130)').env('SECRETS_URL'))
    .addOption(
      new Option(
        '--token <token>',
        'admin JWT or ik_ access key (visible in ps: prefer a file or stdin)',
      ).env('SECRETS_TOKEN'),
    )
    .addOption(
      new Option(
        '--token-file <path>',
        'read the token from this file (keeps it out of every environment)',
      ).env('SECRETS_TOKEN_FILE'),
    )
    .option('--token-stdin', 'read the token from stdin (one line)')
    .addOption(new Option('--profile <name>', 'login profile to use (secrets login)').env('SECRETS_PROFILE'))
    .addOption(
      new Option(
        '--env <name>',
        "environment to address (default: the profile's, else default, the /api/secrets API)",
      ).env('SECRETS_ENV'),
    )
    .addOption(new Option('--timeout <ms>', 'per-request timeout in milliseconds').default('30000'))
    .option('-q, --quiet', 'print no status lines (errors still go to stderr)')
    .addOption(
      new Option(
        '--oidc',
        "no stored credential: exchange the platform's OIDC ID token (GitHub Actions, GitLab CI, Kubernetes) for a short-lived one",
      ).env('SECRETS_OIDC'),
    )
    .addOption(
      new Option(
        '--oidc-audience <aud>',
        'with --oidc: the audience to request (default: the server URL)',
      ).env('SECRETS_OIDC_AUDIENCE'),
    )
    .addOption(
      new Option('--oidc-trust <name>', 'with --oidc: the trust policy to use, when several match').env(
        'SECRETS_OIDC_TRUST',
      ),
    )
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
  Environments: --env NAME (or SECRETS_ENV, or the profile's, stored by secrets login --env NAME)
  makes every command address that environment; without it, default (the /api/secrets API).

  Credentials: flag > environment (SECRETS_URL, SECRETS_TOKEN, SECRETS_TOKEN_FILE) > profile
  (secrets login [--profile NAME], stored in ${profilesPath()}). In CI, --oidc trades the
  platform's ID token (ACTIONS_ID_TOKEN_REQUEST_URL, SECRETS_OIDC_TOKEN_FILE or SECRETS_OIDC_TOKEN)
  for a short-lived credential: nothing to store. Options may come before or after the command.

  Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 server unreachable, 4 unauthenticated (401),
  5 forbidden (403), 6 not found (404), 7 rate limited (429), 8 other API error,
  9 run refused a secret that would set a deny-listed variable (see --allow-env),
  10 get refused: the secret is write-only (run and export deliver it to secrets:inject).
  run exits with its command's code (128+n if signal n ended it).`,
    )
    .exitOverride();

  interface GlobalOpts {
    url?: string;
    token?: string;
    tokenFile?: string;
    tokenStdin?: boolean;
    profile?: string;
    env?: string;
    timeout: string;
    quiet?: boolean;
    oidc?: boolean;
    oidcAudience?: string;
    oidcTrust?: string;
  }

  const DEFAULT_URL = 'http://127.0.0.1:7130';
  /** The client's transport: node:http rather than the runtime's fetch (http-fetch.ts says why). */
  const fetch = httpFetch;
  /**
   * The command being run. Every command accepts the global options too (they are copied
   * onto it before parsing), so `secrets login --profile ci` works like `secrets --profile ci
   * login`; given after the command, they win.
   */
  let active: Command | undefined;
  const given = (name: string) =>
    active !== undefined && active !== program && active.getOptionValueSource(name) === 'cli';
  const opts = (): GlobalOpts => {
    const o: Record<string, unknown> = { ...program.opts<GlobalOpts>() };
    for (const opt of program.options) {
      const name = opt.attributeName();
      if (given(name)) o[name] = active?.getOptionValue(name);
    }
    return o as unknown as GlobalOpts;
  };
  const source = (name: string) => (given(name) ? 'cli' : program.getOptionValueSource(name));

  async function profile(): Promise<Profile | undefined> {
    const name = opts().profile ?? 'default';
    const p = (await readProfiles()).profiles[name];
    if (!p && opts().profile)
      throw new UsageError(`no profile ${name}: create it with secrets login --profile ${name}`);
    return p;
  }

  /**
   * The credential given to this run, by the one precedence every command uses (login
   * included): --oidc, then --token-stdin, --token-file, --token, then the environment's
   * SECRETS_TOKEN and SECRETS_TOKEN_FILE (flag > environment). Undefined when none is given.
   */
  async function givenToken(url: string): Promise<string | undefined> {
    const o = opts();
    if (o.oidc) return workloadToken(url);
    if (o.tokenStdin) return readTokenStdin();
    if (source('tokenFile') === 'cli') return readTokenFile(o.tokenFile!);
    if (source('token') === 'cli' || source('token') === 'env') return o.token;
    if (source('tokenFile') === 'env') return readTokenFile(o.tokenFile!);
    return undefined;
  }

  /** The server URL and credential, by precedence: flag > environment > profile. */
  async function connection(): Promise<{ url: string; token: string | undefined }> {
    const o = opts();
    const p = await profile();
    const url =
      o.url !== undefined
        ? checkUrl(o.url, source('url') === 'cli' ? '--url' : 'SECRETS_URL')
        : checkUrl(p?.url ?? DEFAULT_URL, 'the profile URL');
    return { url, token: (await givenToken(url)) ?? p?.token };
  }

  /** --oidc: the platform's ID token (oidc.ts says where from), exchanged for a workload credential. */
  async function workloadToken(url: string): Promise<string> {
    const o = opts();
    const timeoutMs = Number(o.timeout) || 30_000;
    const { token: idToken } = await platformIdToken(o.oidcAudience ?? url, process.env, timeoutMs);
    maskForActions([idToken]);
    const issued = await createSecretsClient({ baseUrl: url, timeoutMs, fetch }).exchangeIdToken(idToken, {
      trust: o.oidcTrust,
    });
    maskForActions([issued.accessToken]);
    return issued.accessToken;
  }

  /** The environment to address: --env or SECRETS_ENV, else the profile's, else default. */
  async function environment(): Promise<string | undefined> {
    // An empty SECRETS_ENV (a CI template with nothing filled in) means "not set".
    const given = opts().env || (await profile())?.environment;
    if (given !== undefined && !isEnvironmentName(given))
      throw new UsageError(`invalid environment ${JSON.stringify(given)}: ${ENVIRONMENT_NAME_RULE}`);
    return given;
  }

  async function client(): Promise<SecretsClient> {
    const { url, token } = await connection();
    return createSecretsClient({
      baseUrl: url,
      token,
      timeoutMs: Number(opts().timeout) || 30_000,
      fetch,
      environment: await environment(),
    });
  }

  function envName(name: string): string {
    if (!isEnvironmentName(name))
      throw new UsageError(`invalid environment ${JSON.stringify(name)}: ${ENVIRONMENT_NAME_RULE}`);
    return name;
  }

  function key(k: string): string {
    if (!isSecretKey(k))
      throw new UsageError(`invalid key ${JSON.stringify(k)}: use A-Z, 0-9 and _ (e.g. STRIPE_API_KEY)`);
    return k;
  }

  function prefix(p: string | undefined): string | undefined {
    if (p !== undefined && !isKeyPrefix(p)) throw new UsageError('--prefix may contain only A-Z, 0-9 and _');
    return p;
  }

  const status = (line: string) => {
    if (!opts().quiet) process.stderr.write(`${line}\n`);
  };
  const warn = (line: string) => process.stderr.write(`secrets: warning: ${line}\n`);

  const formatOption = (allowed: readonly Format[], fallback: string) =>
    new Option('--format <format>', `output format: ${allowed.join(', ')} (default: ${fallback})`).choices(
      allowed,
    );

  /** table on a terminal, plain lines otherwise, unless --format says. */
  const tty = () => process.stdout.isTTY === true;
  const resources = resourceCommands({ client, tty, status });

  program
    .command('get')
    .description('print the value of KEY on stdout, exactly (no newline added)')
    .argument('<KEY>')
    .addOption(formatOption(['json', 'dotenv', 'shell'], 'the bare value'))
    .action(async (k: string, o: { format?: Format }) => {
      const name = key(k);
      const value = await (await client()).getSecret(name);
      maskForActions([value]);
      if (o.format === 'json') process.stdout.write(`${JSON.stringify({ key: name, value })}\n`);
      else if (o.format === 'dotenv' || o.format === 'shell')
        process.stdout.write(formatValues({ [name]: value }, o.format, warn));
      else process.stdout.write(value);
    });

  program
    .command('set')
    .description(
      'create KEY or give it a new value, read from stdin, --file, or a hidden prompt on a terminal (never from the command line)',
    )
    .argument('<KEY>')
    .argument('[VALUE...]', 'refused: values on the command line are visible in ps and shell history')
    .option('--file <path>', 'read the value from this file instead of stdin')
    .option('--raw', 'keep the bytes exactly (by default one trailing newline is dropped)')
    .option(
      '--write-only',
      'never return the value again (get refuses it; run/export deliver it to secrets:inject); permanent',
    )
    .action(async (k: string, extra: string[], o: { file?: string; raw?: boolean; writeOnly?: boolean }) => {
      const name = key(k);
      if (extra.length) {
        throw new UsageError(
          `values are not taken from the command line (ps and shell history would show them): pipe it (printf %s "$VALUE" | secrets set ${name}), use --file PATH, or run on a terminal to be asked for it`,
        );
      }
      const c = await client();
      const value = await readValue({ ...o, prompt: `Value for ${name} (not shown): ` });
      const result = await c.setSecret(name, value, { writeOnly: o.writeOnly ?? false });
      status(`${result} ${name}${o.writeOnly ? ' (write-only)' : ''}`);
    });

  program
    .command('list')
    .description(
      'list secrets (metadata only, never values): a table on a terminal, one key a line otherwise',
    )
    .option('--prefix <prefix>', 'only keys starting with this')
    .option('--all', 'include inactive (deleted) secrets')
    .option('--json', 'same as --format json')
    .addOption(formatOption(['table', 'json'], 'table on a terminal, else one key a line'))
    .action(async (o: { prefix?: string; all?: boolean; json?: boolean; format?: Format }) => {
      const list = await (await client()).listSecrets({
        ...(o.prefix ? { prefix: prefix(o.prefix)! } : {}),
        ...(o.all ? {} : { active: true }),
      });
      const format = o.json ? 'json' : (o.format ?? (tty() ? 'table' : undefined));
      process.stdout.write(
        listing(
          list,
          format,
          {
            KEY: (s) => s.key,
            ACTIVE: (s) => (s.isActive ? 'yes' : 'no'),
            VERSION: (s) => String(s.version ?? ''),
            UPDATED: (s) => s.updatedAt,
            EXPIRES: (s) => s.expiresAt ?? '-',
          },
          (s) => `${s.key}${s.isActive ? '' : '\t(inactive)'}`,
        ),
      );
    });

  program
    .command('delete')
    .description('delete KEY (soft delete: it can be re-created; reserved secrets are refused)')
    .argument('<KEY>')
    .action(async (k: string) => {
      const name = key(k);
      await (await client()).deleteSecret(name);
      status(`deleted ${name}`);
    });

  program
    .command('export')
    .description('print active secrets with their values, for a file or eval')
    .option('--prefix <prefix>', 'only keys starting with this')
    .addOption(formatOption(['dotenv', 'json', 'shell'], 'dotenv').default('dotenv'))
    .action(async (o: { prefix?: string; format: 'dotenv' | 'json' | 'shell' }) => {
      const secrets = await (await client()).exportSecrets(prefix(o.prefix));
      maskForActions(Object.values(secrets));
      if (o.format === 'json') process.stdout.write(`${JSON.stringify(secrets, null, 2)}\n`);
      else process.stdout.write(formatValues(secrets, o.format, warn));
    });

  program
    .command('run')
    .description('run a command with the active secrets in its environment; exits with its exit code')
    .option('--prefix <prefix>', 'only keys starting with this')
    .option(
      '--allow-env <NAME>',
      'let a secret set this deny-listed variable (PATH, NODE_OPTIONS, LD_PRELOAD...); repeat for each',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--watch',
      'restart the command when a value it received changes (told by GET /api/events, else polls with If-None-Match)',
    )
    .option('--interval <seconds>', 'with --watch: seconds between polls', '10')
    .option('--signal <SIGNAL>', 'with --watch: send this signal (e.g. SIGHUP) instead of restarting')
    .argument('<command>', 'the command (put -- before it)')
    .argument('[args...]', 'its arguments')
    .passThroughOptions()
    .action(
      async (
        command: string,
        args: string[],
        o: { prefix?: string; allowEnv: string[]; watch?: boolean; interval: string; signal?: string },
      ) => {
        const c = await client();
        const p = prefix(o.prefix);
        const env = envFromSecrets(await c.exportSecrets(p), o.allowEnv, warn);
        maskForActions(Object.values(env));
        // The command gets the secrets, not the credential that fetched them (nor where it is).
        const drop = ['SECRETS_TOKEN', 'SECRETS_TOKEN_FILE', 'SECRETS_OIDC_TOKEN'];
        if (!o.watch) {
          process.exitCode = await runWithEnv(command, args, env, drop);
          return;
        }
        const intervalMs = Number(o.interval) * 1000;
        if (!Number.isFinite(intervalMs) || intervalMs < 100)
          throw new UsageError('--interval must be at least 0.1 s');
        const signal = o.signal?.toUpperCase();
        if (signal !== undefined && !(signal in constants.signals))
          throw new UsageError(`--signal ${o.signal}: not a signal name (e.g. SIGHUP)`);
        // One ETag per value handed over; each poll is a conditional read (304: unchanged).
        const etags = new Map<string, string>();
        for (const k of Object.keys(env)) {
          let r: Awaited<ReturnType<typeof c.getIfChanged>>;
          try {
            r = await c.getIfChanged(k);
          } catch (err) {
            // A conditional read is a reveal, which a write-only secret refuses to everyone.
            if (!isWriteOnlyRefusal(err)) throw err;
            warn(
              `--watch does not follow ${k}: it is write-only (its changes reach the command on the next restart)`,
            );
            continue;
          }
          if (r) etags.set(k, r.etag);
        }
        process.exitCode = await runWatching(command, args, env, drop, {
          intervalMs,
          signal: signal as NodeJS.Signals | undefined,
          warn: (line) => status(`secrets run: ${line}`),
          // The event stream wakes the check as soon as a followed key changes; without it
          // (an older server, a key without secrets:list, a dropped connection) polling goes on.
          subscribe: (wake) => {
            const ac = new AbortController();
            let connected = false;
            let lastEventId: string | undefined;
            void (async () => {
              while (!ac.signal.aborted) {
                try {
                  const open = (position: string) => {
                    lastEventId ??= position;
                    if (!connected) status('secrets run: following changes live (GET /api/events)');
                    connected = true;
                  };
                  for await (const e of c.events({ lastEventId, signal: ac.signal, onOpen: open })) {
                    lastEventId = e.id;
                    const key = e.data.data.key;
                    if (typeof key === 'string' && etags.has(key)) wake();
                  }
                } catch {
                  // Refused or dropped: poll meanwhile, try the stream again later.
                }
                connected = false;
                if (!ac.signal.aborted)
                  await new Promise((r) => setTimeout(r, Math.max(intervalMs, 5000)).unref());
              }
            })();
            return { connected: () => connected, stop: () => ac.abort() };
          },
          changed: async () => {
            let changed = false;
            for (const [k, etag] of etags) {
              const r = await c.getIfChanged(k, etag);
              if (r) {
                etags.set(k, r.etag);
                changed = true;
              }
            }
            if (!changed) return null;
            const next = envFromSecrets(await c.exportSecrets(p), o.allowEnv, warn);
            maskForActions(Object.values(next));
            return next;
          },
        });
      },
    );

  program
    .command('import')
    .description(
      'create or update every key of a dotenv or JSON file (- for stdin) in one transaction: all or nothing',
    )
    .argument('<FILE>', 'a .env file, or a JSON object {"KEY": "value"}; - reads stdin')
    .option('--dry-run', 'show what would be created or updated (names only) and change nothing')
    .addOption(formatOption(['table', 'json'], 'one line per key'))
    .action(async (file: string, o: { dryRun?: boolean; format?: Format }) => {
      const text = await readInput(file);
      const entries = await parseImport(text, file);
      const c = await client();
      const { results } = await c.batch(entries, { dryRun: o.dryRun ?? false });
      const verb = (s: string) => (o.dryRun ? `would be ${s}` : s);
      if (o.format === 'json') process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else if (o.format === 'table')
        process.stdout.write(
          table(
            ['KEY', 'STATUS'],
            results.map((r) => [r.key, verb(r.status)]),
          ),
        );
      else for (const r of results) status(`${verb(r.status)} ${r.key}`);
    });

  program
    .command('ensure')
    .description(
      'make sure KEY exists: create it with a server-generated value if it does not, else change nothing',
    )
    .argument('<KEY>')
    .requiredOption(
      '--generate',
      'generate the value on the server (crypto-random, never sent back unless --print)',
    )
    .option('--length <n>', 'characters, 16..4096', '32')
    .addOption(
      new Option('--alphabet <alphabet>', 'characters to draw from')
        .choices(['base64url', 'hex', 'alnum', 'ascii'])
        .default('base64url'),
    )
    .option('--description <text>', 'description for a newly created secret')
    .option(
      '--write-only',
      'create it write-only: a value no person ever sees (an existing secret is left as it is)',
    )
    .option('--print', 'print the value (new or existing) on stdout; needs read access')
    .action(
      async (
        k: string,
        o: {
          length: string;
          alphabet: 'base64url' | 'hex' | 'alnum' | 'ascii';
          description?: string;
          print?: boolean;
          writeOnly?: boolean;
        },
      ) => {
        const name = key(k);
        if (o.print && o.writeOnly)
          throw new UsageError('--print and --write-only contradict: a write-only value is never returned');
        const length = Number(o.length);
        if (!Number.isInteger(length) || length < 16 || length > 4096)
          throw new UsageError('--length must be a whole number from 16 to 4096');
        const c = await client();
        const result = await c.ensureGenerated(
          name,
          { length, alphabet: o.alphabet },
          {
            ...(o.description ? { description: o.description } : {}),
            ...(o.writeOnly ? { isWriteOnly: true } : {}),
          },
        );
        status(
          result === 'created'
            ? `created ${name} (generated${o.writeOnly ? ', write-only' : ''})`
            : `${name} exists: unchanged`,
        );
        if (o.print) {
          const value = await c.getSecret(name);
          maskForActions([value]);
          process.stdout.write(value);
        }
      },
    );

  program
    .command('login')
    .description(
      'check a token or access key against the server and store it, with the URL, in an owner-only profile file',
    )
    .action(async () => {
      const o = opts();
      const name = o.profile ?? 'default';
      const url = checkUrl(o.url ?? DEFAULT_URL, source('url') === 'cli' ? '--url' : 'SECRETS_URL');
      let token = await givenToken(url);
      if (token === undefined && process.stdin.isTTY)
        token = await readValue({ prompt: 'Token or access key (not shown): ' });
      if (token === undefined)
        throw new UsageError('give the token with --token-stdin, --token-file PATH or SECRETS_TOKEN');
      const who = await createSecretsClient({
        baseUrl: url,
        token,
        timeoutMs: Number(o.timeout) || 30_000,
        fetch,
      }).whoami();
      const env = o.env === undefined ? undefined : envName(o.env);
      const path = await saveProfile(name, { url, token, ...(env ? { environment: env } : {}) });
      status(
        `logged in to ${url} as ${describeWho(who)}${env ? ` (environment ${env})` : ''}; profile ${name} saved in ${path}`,
      );
    });

  program
    .command('logout')
    .description('forget the stored credential of the profile (default: default)')
    .action(async () => {
      const name = opts().profile ?? 'default';
      status((await removeProfile(name)) ? `profile ${name} removed` : `no profile ${name}: nothing to do`);
    });

  program
    .command('whoami')
    .description('ask the server who the current credential is')
    .addOption(formatOption(['table', 'json'], 'one line'))
    .action(async (o: { format?: Format }) => {
      const { url } = await connection();
      const who = await (await client()).whoami();
      if (o.format === 'json') process.stdout.write(`${JSON.stringify({ url, ...who }, null, 2)}\n`);
      else if (o.format === 'table')
        process.stdout.write(
          table(
            ['URL', 'KIND', 'NAME', 'SCOPES', 'KEYS'],
            [[url, who.kind, who.name, who.scopes?.join(',') ?? 'all', who.keys?.join(',') ?? 'all']],
          ),
        );
      else process.stdout.write(`${describeWho(who)} at ${url}\n`);
    });

  function describeWho(who: { kind: string; name: string; scopes: string[] | null; keys: string[] | null }) {
    return who.kind === 'admin'
      ? `admin ${who.name}`
      : `${who.kind === 'workload' ? 'workload' : 'access key'} ${who.name} (scopes: ${who.scopes?.join(', ')}; keys: ${who.keys?.join(', ') ?? 'all'})`;
  }

  /** A file's text, or stdin's for `-`. */
  async function readInput(file: string): Promise<string> {
    if (file !== '-') {
      return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read ${file}: ${err.code ?? err.message}`);
      });
    }
    const chunks: Buffer[] = [];
    for await (const ch of process.stdin) chunks.push(ch as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** A dotenv file or a JSON object of strings, as batch entries; refuses what cannot be imported. */
  async function parseImport(text: string, file: string): Promise<BatchEntry[]> {
    let pairs: Record<string, unknown>;
    if (file.endsWith('.json') || /^\s*\{/.test(text)) {
      try {
        pairs = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`);
      }
      if (typeof pairs !== 'object' || pairs === null || Array.isArray(pairs))
        throw new UsageError(`${file}: expected a JSON object {"KEY": "value", ...}`);
    } else {
      // Loaded here, not at start: dotenv loads node:crypto, which no other command needs.
      const { parse } = await import('dotenv');
      pairs = parse(text);
    }
    const problems: string[] = [];
    const entries: BatchEntry[] = [];
    for (const [k, v] of Object.entries(pairs)) {
      if (!isSecretKey(k)) problems.push(`${k}: not a valid key (A-Z, 0-9 and _)`);
      else if (typeof v !== 'string') problems.push(`${k}: the value must be a string`);
      else if (v === '') problems.push(`${k}: the value is empty`);
      else entries.push({ key: k, value: v });
    }
    if (problems.length) throw new UsageError(`${file}: nothing imported:\n  ${problems.join('\n  ')}`);
    if (!entries.length) throw new UsageError(`${file} holds no secrets`);
    return entries;
  }

  const trust = program
    .command('trust')
    .description(
      'workload-identity trust policies (admin): which CI jobs may exchange their ID token, for what (docs/ci.md)',
    );
  resources.list(trust.command('list').description('list the trust policies'), {
    fetch: (c) => c.trusts.list(),
    columns: {
      NAME: 'name',
      ISSUER: 'issuer',
      SUBJECT: 'subject',
      SCOPES: (x) => x.scopes.join(','),
      KEYS: (x) => x.keys?.join(',') ?? 'all',
      TTL: (x) => `${x.ttlSeconds}s`,
    },
  });
  trust
    .command('apply')
    .description('create the trust policy in a JSON file (- for stdin), or replace the one of that name')
    .argument(
      '<FILE>',
      '{"name", "issuer", "audiences", "subject", "claims"?, "scopes", "keys"?, "ttlSeconds"?}',
    )
    .action(async (file: string) => {
      const text = await readInput(file);
      let body: TrustPolicyInput;
      try {
        body = JSON.parse(text) as TrustPolicyInput;
      } catch (err) {
        throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`);
      }
      const c = await client();
      const exists =
        typeof body?.name === 'string' && (await c.trusts.list()).some((x) => x.name === body.name);
      const saved = exists ? await c.trusts.replace(body.name, body) : await c.trusts.create(body);
      status(`${exists ? 'replaced' : 'created'} trust ${saved.name}`);
    });
  resources.delete(trust, {
    description: 'delete a trust policy: the credentials it issued stop working at once',
    argument: '<NAME>',
    noun: 'trust',
    remove: (c, name) => c.trusts.remove(name),
  });

  const env = program
    .command('env')
    .description(
      'environments: separate secrets for development, staging and production (docs/environments.md)',
    );
  resources.list(
    env.command('list').description('list the environments (an access key sees those it covers)'),
    {
      fetch: (c) => c.environments.list(),
      columns: { NAME: 'name', DESCRIPTION: (x) => x.description ?? '', CREATED: 'createdAt' },
    },
  );
  env
    .command('create')
    .description('create an environment (admin)')
    .argument('<NAME>', 'a lowercase slug, e.g. staging')
    .option('--description <text>', 'what it is for')
    .action(async (name: string, o: { description?: string }) => {
      await (await client()).environments.create(envName(name), o.description);
      status(`created environment ${name}`);
    });
  resources.delete(env, {
    description: 'delete an environment that holds no active secret (admin); default cannot be deleted',
    argument: '<NAME>',
    noun: 'environment',
    remove: (c, name) => c.environments.remove(envName(name)),
  });
  env
    .command('compare')
    .description(
      'which keys differ between two environments (never values): only in A, only in B, equal, different',
    )
    .argument('<A>')
    .argument('<B>')
    .option('--prefix <prefix>', 'only keys starting with this')
    .addOption(formatOption(['table', 'json'], 'table on a terminal, else "STATUS KEY" lines'))
    .action(async (a: string, b: string, o: { prefix?: string; format?: Format }) => {
      const p = prefix(o.prefix);
      const result = await (await client()).environments.compare(
        envName(a),
        envName(b),
        p ? { prefix: p } : {},
      );
      const format = o.format ?? (tty() ? 'table' : undefined);
      const label = (s: string) =>
        s === 'only_in_a' ? `only in ${a}` : s === 'only_in_b' ? `only in ${b}` : s.replace('_', ' ');
      if (format === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (format === 'table')
        process.stdout.write(
          table(
            ['KEY', 'STATUS'],
            result.keys.map((k) => [
              k.key,
              `${label(k.status)}${k.reason ? ` (${k.reason.replace('_', '-')})` : ''}`,
            ]),
          ),
        );
      else for (const k of result.keys) process.stdout.write(`${k.status} ${k.key}\n`);
    });
  env
    .command('promote')
    .description(
      "copy these keys' values from FROM to TO (admin): one all-or-nothing batch, each key only if TO still holds what compare saw there",
    )
    .argument('<FROM>')
    .argument('<TO>')
    .argument('<KEY...>', 'the keys to promote')
    .action(async (from: string, to: string, keys: string[]) => {
      const c = await client();
      const wanted = [...new Set(keys.map(key))];
      // What TO holds now (its ETag, or nothing): the compare-and-set condition of each key.
      const seen = new Map(
        (await c.environments.compare(envName(from), envName(to))).keys.map((k) => [k.key, k]),
      );
      const missing = wanted.filter((k) => {
        const s = seen.get(k)?.status;
        return s === undefined || s === 'only_in_b';
      });
      if (missing.length > 0) throw new UsageError(`not in ${from}: ${missing.join(', ')}`);
      const { results } = await c.environments.promote(
        from,
        to,
        wanted.map((k) => ({ key: k, targetEtag: seen.get(k)?.etagB ?? null })),
      );
      for (const r of results) status(`${r.status} ${r.key} in ${to}`);
    });

  addOperatorCommands(program);

  // The global options, accepted after the command too (hidden from each command's help:
  // the program's help lists them once). Not on `run` after its command: what follows the
  // command is the command's own (passThroughOptions).
  const withGlobals = (cmds: readonly Command[]) => {
    for (const cmd of cmds) {
      for (const opt of program.options) {
        if (opt.long === '--version' || cmd.options.some((o) => o.long === opt.long)) continue;
        cmd.addOption(new Option(opt.flags, opt.description).hideHelp());
      }
      withGlobals(cmd.commands);
    }
  };
  // Added to the command being run (and its subcommands) as it is dispatched, not to all
  // thirty at start.
  addWebhookCommands(program, { client, status, tty });

  program.hook('preSubcommand', (_program, sub) => withGlobals([sub]));
  program.hook('preAction', (_program, cmd) => {
    active = cmd;
  });
  return program;
}

/** Runs the CLI on `argv` (process.argv's shape); sets process.exitCode, never exits. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // commander already printed the message or the help text
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      process.stderr.write(`secrets: ${describeError(err)}\n`);
      process.exitCode = err instanceof DeniedEnvError ? EXIT.deniedEnv : exitCodeFor(err);
    }
  }
}
