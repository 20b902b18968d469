import { expect, it } from 'vitest';
import { ALPHABETS } from '../../src/secrets/generate.js';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';

/** Server side of the provisioning commands: generate on create, the batch endpoint, 304, whoami. */
const t = useTestApp({ resetEachTest: true });

const inject = (
  method: 'GET' | 'POST',
  url: string,
  payload?: unknown,
  headers: Record<string, string> = t.auth(),
) => t.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
const read = async (key: string) => (await inject('GET', `/api/secrets/${key}`)).json().value as string;
const auditOf = (key: string) =>
  t.db.query<{ action: string; outcome: string }>(
    'SELECT action, outcome FROM audit_log WHERE key = $1 ORDER BY id',
    [key],
  );

it('POST /api/secrets with generate makes a crypto-random value of the asked shape and never returns it', async () => {
  const res = await inject('POST', '/api/secrets', { key: 'GEN_DEFAULT', generate: {} });
  expect(res.statusCode).toBe(201);
  expect(Object.keys(res.json()).sort()).toEqual(['id', 'message', 'success']);
  const v = await read('GEN_DEFAULT');
  expect(v).toMatch(/^[A-Za-z0-9_-]{32}$/);
  expect(res.body).not.toContain(v);
  expect(capturedLogs.some((l) => l.includes(v))).toBe(false);

  expect((await inject('POST', '/api/secrets', { key: 'GEN_TRUE', generate: true })).statusCode).toBe(201);
  expect(await read('GEN_TRUE')).toMatch(/^[A-Za-z0-9_-]{32}$/);
  expect(await read('GEN_TRUE')).not.toBe(v);

  for (const alphabet of Object.keys(ALPHABETS) as (keyof typeof ALPHABETS)[]) {
    const key = `GEN_${alphabet.toUpperCase()}`;
    const r = await inject('POST', '/api/secrets', { key, generate: { length: 100, alphabet } });
    expect(r.statusCode).toBe(201);
    const got = await read(key);
    expect(got).toHaveLength(100);
    expect([...got].every((c) => ALPHABETS[alphabet].includes(c))).toBe(true);
  }
});

it('refuses bad generate requests with 400 saying what is wrong, and stores nothing', async () => {
  const cases: [unknown, string][] = [
    [{ key: 'G', value: 'x', generate: {} }, 'either value or generate'],
    [{ key: 'G' }, 'Both key and value are required'],
    [{ key: 'G', generate: { length: 15 } }, 'from 16 to 4096'],
    [{ key: 'G', generate: { length: 4097 } }, 'from 16 to 4096'],
    [{ key: 'G', generate: { alphabet: 'emoji' } }, 'alphabet must be one of'],
    [{ key: 'G', generate: { size: 20 } }, 'size'],
    [{ key: 'G', generate: false }, 'generate must be true or an object'],
  ];
  for (const [payload, message] of cases) {
    const r = await inject('POST', '/api/secrets', payload);
    expect(r.statusCode, JSON.stringify(payload)).toBe(400);
    expect(r.json().message).toContain(message);
  }
  expect((await inject('GET', '/api/secrets')).json().secrets).toEqual([]);
});

it('batch: creates, updates and leaves unchanged in one call; dry run reports without changing', async () => {
  const [a, b, b2] = [secretValue('a'), secretValue('b'), secretValue('b2')];
  await inject('POST', '/api/secrets', { key: 'B_EXISTING', value: b });
  await inject('POST', '/api/secrets', { key: 'B_SAME', value: a });
  const body = {
    secrets: [
      { key: 'B_NEW', value: a, description: 'new one' },
      { key: 'B_EXISTING', value: b2 },
      { key: 'B_SAME', value: a },
      { key: 'B_GEN', generate: { length: 20, alphabet: 'hex' } },
    ],
  };
  const dry = await inject('POST', '/api/secrets/batch', { ...body, dryRun: true });
  expect(dry.statusCode).toBe(200);
  expect(dry.json()).toEqual({
    dryRun: true,
    results: [
      { key: 'B_NEW', status: 'created' },
      { key: 'B_EXISTING', status: 'updated' },
      { key: 'B_SAME', status: 'unchanged' },
      { key: 'B_GEN', status: 'created' },
    ],
  });
  for (const v of [a, b, b2]) expect(dry.body).not.toContain(v);
  expect(await read('B_EXISTING')).toBe(b);
  expect((await inject('GET', '/api/secrets/B_NEW')).statusCode).toBe(404);

  const real = await inject('POST', '/api/secrets/batch', body);
  expect(real.json().results.map((r: { status: string }) => r.status)).toEqual([
    'created',
    'updated',
    'unchanged',
    'created',
  ]);
  expect(await read('B_NEW')).toBe(a);
  expect(await read('B_EXISTING')).toBe(b2);
  const gen = await read('B_GEN');
  expect(gen).toMatch(/^[0-9a-f]{20}$/);
  expect(await auditOf('B_EXISTING')).toContainEqual({ action: 'secret.update', outcome: 'success' });
  expect(await auditOf('B_SAME')).toContainEqual({ action: 'secret.update', outcome: 'unchanged' });
  expect(await auditOf('B_NEW')).toEqual([
    { action: 'secret.create', outcome: 'dry_run' },
    { action: 'secret.read', outcome: 'not_found' },
    { action: 'secret.create', outcome: 'success' },
    { action: 'secret.read', outcome: 'success' },
  ]);

  // Re-running is idempotent: nothing changes, no new version, the generated value is kept.
  const again = await inject('POST', '/api/secrets/batch', body);
  expect(again.json().results.map((r: { status: string }) => r.status)).toEqual([
    'unchanged',
    'unchanged',
    'unchanged',
    'unchanged',
  ]);
  expect(await read('B_GEN')).toBe(gen);
  const meta = (await inject('GET', '/api/secrets')).json().secrets as { key: string; version: number }[];
  expect(meta.find((s) => s.key === 'B_EXISTING')?.version).toBe(2);
});

it('batch is all or nothing: a stale ifMatch answers 412 naming the key and nothing is written', async () => {
  const old = secretValue('old');
  await inject('POST', '/api/secrets', { key: 'C_ONE', value: old });
  const first = await inject('GET', '/api/secrets/C_ONE');
  const etag = first.headers.etag as string;
  await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/C_ONE',
    headers: t.auth(),
    payload: { description: 'changed' },
  });
  const res = await inject('POST', '/api/secrets/batch', {
    secrets: [
      { key: 'C_AAA_NEW', value: secretValue('x') },
      { key: 'C_ONE', value: secretValue('y'), ifMatch: etag },
    ],
  });
  expect(res.statusCode).toBe(412);
  expect(res.json().message).toContain('C_ONE');
  expect((await inject('GET', '/api/secrets/C_AAA_NEW')).statusCode).toBe(404);
  expect(await read('C_ONE')).toBe(old);
  expect(await auditOf('C_AAA_NEW')).toEqual([
    { action: 'secret.update', outcome: 'aborted' },
    { action: 'secret.read', outcome: 'not_found' },
  ]);
  expect((await auditOf('C_ONE')).map((r) => r.outcome)).toContain('precondition_failed');

  // The current ETag applies.
  const current = (await inject('GET', '/api/secrets/C_ONE')).headers.etag as string;
  const ok = await inject('POST', '/api/secrets/batch', {
    secrets: [{ key: 'C_ONE', value: secretValue('z'), ifMatch: current }],
  });
  expect(ok.statusCode).toBe(200);
});

it('batch validates its input with 400 and checks access keys: secrets:write and every key in scope', async () => {
  const bad: [unknown, string][] = [
    [{ secrets: [] }, 'at least one'],
    [{ secrets: [{ key: 'lower', value: 'x' }] }, 'Invalid key format'],
    [{ secrets: [{ key: 'A' }] }, 'exactly one of value or generate'],
    [
      {
        secrets: [
          { key: 'A', value: 'x' },
          { key: 'A', value: 'y' },
        ],
      },
      'repeated: A',
    ],
    [{ secrets: [{ key: 'A', value: 'x', extra: 1 }] }, 'Unknown field(s): extra'],
    [{ secrets: 'A=1' }, 'secrets must be an array'],
  ];
  for (const [payload, message] of bad) {
    const r = await inject('POST', '/api/secrets/batch', payload);
    expect(r.statusCode, JSON.stringify(payload)).toBe(400);
    expect(r.json().message).toContain(message);
  }

  const writer = await createAccessKey(t, { scopes: ['secrets:write'], keys: ['APP_*'] });
  const reader = await createAccessKey(t, { scopes: ['secrets:read'] });
  const v = secretValue('w');
  const outside = await inject(
    'POST',
    '/api/secrets/batch',
    {
      secrets: [
        { key: 'APP_A', value: v },
        { key: 'OTHER', value: v },
      ],
    },
    bearer(writer.token),
  );
  expect(outside.statusCode).toBe(403);
  expect(outside.json().message).toContain('OTHER');
  expect((await inject('GET', '/api/secrets/APP_A')).statusCode).toBe(404);
  const noScope = await inject(
    'POST',
    '/api/secrets/batch',
    { secrets: [{ key: 'APP_A', value: v }] },
    bearer(reader.token),
  );
  expect(noScope.statusCode).toBe(403);

  const ok = await inject(
    'POST',
    '/api/secrets/batch',
    { secrets: [{ key: 'APP_A', value: v }] },
    bearer(writer.token),
  );
  expect(ok.json().results).toEqual([{ key: 'APP_A', status: 'created' }]);
  // A write-only key never learns whether a value it sends equals the stored one.
  const same = await inject(
    'POST',
    '/api/secrets/batch',
    { secrets: [{ key: 'APP_A', value: v }] },
    bearer(writer.token),
  );
  expect(same.json().results).toEqual([{ key: 'APP_A', status: 'updated' }]);
});

it('GET /api/secrets/:key answers 304 without a body to If-None-Match with the current ETag, still audited', async () => {
  await inject('POST', '/api/secrets', { key: 'NM', value: secretValue('nm') });
  const first = await inject('GET', '/api/secrets/NM');
  const etag = first.headers.etag as string;
  const same = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/NM',
    headers: { ...t.auth(), 'if-none-match': `"other", ${etag}` },
  });
  expect(same.statusCode).toBe(304);
  expect(same.body).toBe('');
  expect(same.headers.etag).toBe(etag);
  expect((await auditOf('NM')).filter((r) => r.action === 'secret.read')).toHaveLength(2);

  await t.app.inject({
    method: 'PUT',
    url: '/api/secrets/NM',
    headers: t.auth(),
    payload: { value: 'new-value' },
  });
  const changed = await t.app.inject({
    method: 'GET',
    url: '/api/secrets/NM',
    headers: { ...t.auth(), 'if-none-match': etag },
  });
  expect(changed.statusCode).toBe(200);
  expect(changed.json().value).toBe('new-value');
});

it('GET /api/auth/whoami names the admin or the access key with its scopes', async () => {
  expect((await inject('GET', '/api/auth/whoami', undefined, t.auth('alice'))).json()).toEqual({
    kind: 'admin',
    name: 'alice',
    scopes: null,
    keys: null,
  });
  const k = await createAccessKey(t, { name: 'ci-reader', scopes: ['secrets:read'], keys: ['CI_*'] });
  expect((await inject('GET', '/api/auth/whoami', undefined, bearer(k.token))).json()).toEqual({
    kind: 'access_key',
    name: 'ci-reader',
    scopes: ['secrets:read'],
    keys: ['CI_*'],
  });
  expect((await inject('GET', '/api/auth/whoami', undefined, {} as never)).statusCode).toBe(401);
});
