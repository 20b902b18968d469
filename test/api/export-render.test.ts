import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { expect, it } from 'vitest';
import { SecretsApiError } from '../../src/client/index.js';
import { toShell } from '../../src/secrets/export-format.js';
import { secretValue, trackValue } from '../helpers/secrets.js';
import { useTestServer } from '../helpers/server.js';

const t = useTestServer({ resetEachTest: true });

const put = (key: string, value: string, extra: Record<string, unknown> = {}) =>
  t.app.inject({ method: 'POST', url: '/api/secrets', headers: t.auth(), payload: { key, value, ...extra } });

// Every character class that breaks naive quoting, each in its own value.
const TRICKY: Record<string, string> = {
  Q_BOTH: trackValue(`he said "hi" and 'bye'`),
  Q_SINGLE_BACKTICK: trackValue("it's `id`"),
  NEWLINES: trackValue('line one\nline two\n\nline four\n'),
  CRLF: trackValue('windows\r\nline\rcr'),
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${} is the point of this value
  DOLLARS: trackValue('$HOME ${PATH} $(whoami) `id` $$'),
  HASH: trackValue('# not a comment #also not'),
  BACKSLASH: trackValue('C:\\path\\new \\n literal \\\\ double'),
  TRAILING_BACKSLASH: trackValue('ends with a backslash\\'),
  UNICODE: trackValue('héllo 日本語 🔑 \u00a0 nbsp'),
  SPACES: trackValue('  leading and trailing  '),
  EQUALS: trackValue('A=B=C; export X=1'),
  QUOTED_LOOKING: trackValue("'already quoted'"),
  DOUBLE_ONLY: trackValue('say "x"'),
};

// No dotenv quoting loads these byte-exact in the dotenv package, Compose and sh (both quote
// kinds; a CR, which the dotenv package turns into LF; a backslash before the closing quote).
const NOT_PORTABLE = ['Q_BOTH', 'Q_SINGLE_BACKTICK', 'CRLF', 'TRAILING_BACKSLASH'];
const PORTABLE = Object.fromEntries(Object.entries(TRICKY).filter(([k]) => !NOT_PORTABLE.includes(k)));

async function seedTricky(only: Record<string, string> = TRICKY) {
  for (const [k, v] of Object.entries(only)) expect((await put(k, v)).statusCode).toBe(201);
}

it('exports dotenv that the dotenv package and a POSIX shell both read back exactly', async () => {
  await seedTricky(PORTABLE);
  const res = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/export?format=dotenv',
    headers: t.auth(),
  });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  expect(parseDotenv(res.body)).toEqual(PORTABLE);
  // one KEY= line per secret, in key order
  expect([...res.body.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1])).toEqual(Object.keys(PORTABLE).sort());
  // `set -a; . ./.env` in sh: nothing expanded, nothing run
  const dir = mkdtempSync(join(tmpdir(), 'dotenv-sh-'));
  try {
    writeFileSync(join(dir, '.env'), res.body);
    const keys = Object.keys(PORTABLE);
    const out = execFileSync(
      'sh',
      ['-c', `set -a; . ./.env; printf '%s\\0' ${keys.map((k) => `"$${k}"`).join(' ')}`],
      { cwd: dir, encoding: 'utf8', env: {} },
    );
    expect(out.split('\0').slice(0, -1)).toEqual(Object.values(PORTABLE));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses dotenv for each value no quoting carries exactly into dotenv, Compose and sh', async () => {
  for (const k of NOT_PORTABLE) {
    await t.reset();
    await put(k, TRICKY[k] as string);
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/export?format=dotenv',
      headers: t.auth(),
    });
    expect(res.statusCode, k).toBe(400);
    expect(res.json().message).toContain(k);
  }
});

it('exports json with the exact values, and shell lines that sh eval gives back', async () => {
  await seedTricky();
  const json = await t.client.exportSecrets();
  expect(json).toEqual(TRICKY);
  const keys = Object.keys(TRICKY);
  const script = `${toShell(json)}\nprintf '%s\\0' ${keys.map((k) => `"$${k}"`).join(' ')}`;
  const out = execFileSync('sh', ['-c', script], { encoding: 'utf8', env: {} });
  expect(out.split('\0').slice(0, -1)).toEqual(Object.values(TRICKY));
});

it('leaves out inactive and expired secrets, and filters by prefix', async () => {
  const keep = secretValue('keep');
  await put('APP_KEEP', keep);
  await put('APP_GONE', secretValue('gone'));
  await t.app.inject({ method: 'DELETE', url: '/api/secrets/APP_GONE', headers: t.auth() });
  await put('APP_OLD', secretValue('old'), { expiresAt: '2000-01-01T00:00:00Z' });
  await put('OTHER', secretValue('other'));
  expect(await t.client.exportSecrets('APP_')).toEqual({ APP_KEEP: keep });
  expect(Object.keys(await t.client.exportSecrets()).sort()).toEqual(['APP_KEEP', 'OTHER']);
  expect(await t.client.exportDotenv('NOTHING')).toBe('');
});

it('refuses dotenv (400 naming the key, never the value) for a value no dotenv quoting carries', async () => {
  const v = trackValue(`all 'three" quotes\``);
  await put('UNQUOTABLE', v);
  const res = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/export?format=dotenv',
    headers: t.auth(),
  });
  expect(res.statusCode).toBe(400);
  expect(res.json().message).toContain('UNQUOTABLE');
  expect(res.body).not.toContain(v);
  expect(await t.client.exportSecrets()).toEqual({ UNQUOTABLE: v }); // json carries anything
});

it('validates the export query and requires an admin token', async () => {
  const bad = await t.app.inject({ method: 'GET', url: '/api/secrets/export?format=xml', headers: t.auth() });
  expect(bad.statusCode).toBe(400);
  expect(bad.json().message).toContain('format must be dotenv or json');
  const lower = await t.app.inject({ method: 'GET', url: '/api/secrets/export?prefix=a', headers: t.auth() });
  expect(lower.statusCode).toBe(400);
  const anon = await t.app.inject({ method: 'GET', url: '/api/secrets/export' });
  expect(anon.statusCode).toBe(401);
  const notAdmin = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/export',
    headers: { authorization: `Bearer ${t.token('u', { role: 'viewer' })}` },
  });
  expect(notAdmin.statusCode).toBe(403);
});

it('is not captured by /api/secrets/:key (a secret named EXPORT is still readable)', async () => {
  const v = secretValue('exp');
  await put('EXPORT', v);
  expect(await t.client.getSecret('EXPORT')).toBe(v);
  expect(await t.client.exportSecrets()).toEqual({ EXPORT: v });
});

const render = (template: unknown) =>
  t.app.inject({ method: 'POST', url: '/api/secrets/render', headers: t.auth(), payload: { template } });

it('renders {{Secrets.NAME}} with the name case-insensitive', async () => {
  const pw = secretValue('pw');
  await put('DB_PASSWORD', pw);
  const rendered = await t.client.render(
    'a={{Secrets.DB_PASSWORD}} b={{secrets.db_password}} c={{ SECRETS.Db_Password }} d={{Secrets.DB_PASSWORD}}',
  );
  expect(rendered).toBe(`a=${pw} b=${pw} c=${pw} d=${pw}`);
  expect(await t.client.render('no references {{here}} {Secrets.X}')).toBe(
    'no references {{here}} {Secrets.X}',
  );
});

it('answers 400 listing every unresolved name (missing, inactive, expired, malformed)', async () => {
  await put('LIVE', secretValue('live'));
  await put('DELETED', secretValue('del'));
  await t.app.inject({ method: 'DELETE', url: '/api/secrets/DELETED', headers: t.auth() });
  await put('EXPIRED', secretValue('exp'), { expiresAt: '2000-01-01T00:00:00Z' });
  const res = await render(
    '{{Secrets.LIVE}} {{Secrets.MISSING}} {{Secrets.deleted}} {{Secrets.EXPIRED}} {{Secrets.bad-name}} {{Secrets.ß}}',
  );
  expect(res.statusCode).toBe(400);
  const { message, error } = res.json();
  expect(error).toBe('INVALID_INPUT');
  for (const name of ['MISSING', 'DELETED', 'EXPIRED', 'bad-name', 'ß']) expect(message).toContain(name);
  expect(message).not.toContain('LIVE');
});

it('never expands again: values containing {{ stay literal', async () => {
  const inner = secretValue('inner');
  await put('INNER', inner);
  const outer = trackValue('prefix {{Secrets.INNER}} {{ and }} suffix');
  await put('OUTER', outer);
  expect(await t.client.render('<{{Secrets.OUTER}}>')).toBe(`<${outer}>`);
  // a value naming a missing secret is not an unresolved reference either
  const dangling = trackValue('{{Secrets.DOES_NOT_EXIST}}');
  await put('DANGLING', dangling);
  expect(await t.client.render('{{Secrets.DANGLING}}')).toBe(dangling);
});

it('validates the render body', async () => {
  expect((await render(42)).statusCode).toBe(400);
  const unknown = await t.app.inject({
    method: 'POST',
    url: '/api/secrets/render',
    headers: t.auth(),
    payload: { template: 'x', extra: 1 },
  });
  expect(unknown.statusCode).toBe(400);
  expect(unknown.json().message).toContain('extra');
  expect((await render('')).json()).toEqual({ rendered: '' });
  await expect(t.client.render('{{Secrets.NOPE}}')).rejects.toBeInstanceOf(SecretsApiError);
});
