import { createHmac, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors } from '../../src/errors.js';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';
import { expectNoEcho, forbid, scanAuditLog, scanLogs } from './hygiene.js';
import { report } from './mode.js';
import { tableDigest } from './snapshot.js';

/**
 * A catalogue of forged and abused credentials, each tried against every secrets route.
 * All must be refused with the documented status and error code, change nothing, and
 * say nothing beyond the documented messages. Add an entry to ATTACKS to extend it
 * (e.g. access keys once they land: a flipped character, a revoked key, a key as JWT).
 */

const ISS = 'https://issuer.test';
const AUD = 'secrets-api';
const ROLE = 'project_admin';
const b64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function hs(header: object, payload: object, key: string | Buffer, hash = 'sha256'): string {
  const data = `${b64(header)}.${b64(payload)}`;
  return `${data}.${createHmac(hash, key).update(data).digest('base64url')}`;
}
function rs(header: object, payload: object, privateKey: string): string {
  const data = `${b64(header)}.${b64(payload)}`;
  return `${data}.${createSign('RSA-SHA256').update(data).sign(privateKey, 'base64url')}`;
}
const claims = (extra: Record<string, unknown> = {}) => ({
  sub: 'attacker',
  role: ROLE,
  iss: ISS,
  aud: AUD,
  iat: now(),
  exp: now() + 600,
  ...extra,
});
const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);

/** Changes one hex digit of an access key: still well-formed, no longer the key. */
const flipHex = (s: string, at: number) => s.slice(0, at) + (s[at] === '0' ? '1' : '0') + s.slice(at + 1);

type Expect = 'none' | 'bad' | 'badKey' | 'notAdmin' | 'scope' | 'pattern' | 'adminOnly';
type Route = { method: string; url: string; payload?: object };
interface Attack {
  name: string;
  app: 'hs' | 'rs';
  /** Authorization header value(s); undefined sends none. */
  auth: (k: Keys) => string | undefined;
  expect: Expect;
  /** Routes to try instead of the secrets routes (e.g. the admin-only ones). */
  routes?: readonly Route[];
  /** Extra request shaping (token elsewhere than the header). */
  extraHeaders?: (k: Keys) => Record<string, string>;
  query?: (k: Keys) => string;
}
interface Keys {
  hsSecret: string;
  publicPem: string;
  privatePem: string;
  otherPrivatePem: string;
  goodHs: string;
  goodRs: string;
  /** Access keys (ik_...), created through POST /api/access-keys on the HS256 service. */
  akAll: string;
  akRevoked: string;
  akExpired: string;
  akListOnly: string;
  akOtherKeys: string;
}

const H = { alg: 'HS256', typ: 'JWT' };
const ATTACKS: Attack[] = [
  { name: 'no Authorization header', app: 'hs', auth: () => undefined, expect: 'none' },
  { name: 'empty Authorization header', app: 'hs', auth: () => '', expect: 'none' },
  {
    name: 'alg none, empty signature',
    app: 'hs',
    auth: () => `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`,
    expect: 'bad',
  },
  {
    name: 'alg none, garbage signature',
    app: 'hs',
    auth: () => `Bearer ${b64({ alg: 'none' })}.${b64(claims())}.c2ln`,
    expect: 'bad',
  },
  {
    name: 'alg NONE upper case',
    app: 'hs',
    auth: () => `Bearer ${b64({ alg: 'NONE' })}.${b64(claims())}.`,
    expect: 'bad',
  },
  {
    name: 'two-part token (signature stripped with its dot)',
    app: 'hs',
    auth: (k) => `Bearer ${k.goodHs.split('.').slice(0, 2).join('.')}`,
    expect: 'bad',
  },
  {
    name: 'signature stripped',
    app: 'hs',
    auth: (k) => `Bearer ${k.goodHs.split('.').slice(0, 2).join('.')}.`,
    expect: 'bad',
  },
  {
    name: 'signature altered (one character)',
    app: 'hs',
    auth: (k) => `Bearer ${flip(k.goodHs, k.goodHs.length - 5)}`,
    expect: 'bad',
  },
  {
    name: 'payload altered, signature kept',
    app: 'hs',
    auth: (k) => {
      const [h, , s] = k.goodHs.split('.');
      return `Bearer ${h}.${b64(claims({ sub: 'root' }))}.${s}`;
    },
    expect: 'bad',
  },
  {
    name: 'signed with another secret',
    app: 'hs',
    auth: () => `Bearer ${hs(H, claims(), randomBytes(48).toString('base64'))}`,
    expect: 'bad',
  },
  {
    name: 'HS512 with the right secret (algorithm not pinned)',
    app: 'hs',
    auth: (k) => `Bearer ${hs({ alg: 'HS512', typ: 'JWT' }, claims(), k.hsSecret, 'sha512')}`,
    expect: 'bad',
  },
  {
    name: 'header says HS256, signed HS512',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims(), k.hsSecret, 'sha512')}`,
    expect: 'bad',
  },
  {
    name: 'expired',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ iat: now() - 7200, exp: now() - 3600 }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'nbf in the future',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ nbf: now() + 3600 }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'exp as a string',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ exp: 'never' }), k.hsSecret)}`,
    expect: 'bad',
  },
  // Issue 11 item 8: exp required and bounded by JWT_MAX_TTL; a string sub required.
  {
    name: 'no exp (a token that never expires)',
    app: 'hs',
    auth: (k) => {
      const { exp: _exp, ...noExp } = claims();
      return `Bearer ${hs(H, noExp, k.hsSecret)}`;
    },
    expect: 'bad',
  },
  {
    name: 'exp in the year 3000',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ exp: 32503680000 }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'exp past the maximum lifetime (24 h + 1 h)',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ exp: now() + 25 * 3600 }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'no sub',
    app: 'hs',
    auth: (k) => {
      const { sub: _sub, ...noSub } = claims();
      return `Bearer ${hs(H, noSub, k.hsSecret)}`;
    },
    expect: 'bad',
  },
  {
    name: 'sub as a number',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ sub: 42 }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'empty sub',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ sub: '' }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'RS256 without exp',
    app: 'rs',
    auth: (k) => {
      const { exp: _exp, ...noExp } = claims();
      return `Bearer ${rs({ alg: 'RS256', typ: 'JWT' }, noExp, k.privatePem)}`;
    },
    expect: 'bad',
  },
  {
    name: 'wrong issuer',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ iss: 'https://evil.test' }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'missing issuer',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ iss: undefined }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'wrong audience',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ aud: 'other-api' }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'huge token (over 8 KiB)',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ pad: 'x'.repeat(10_000) }), k.hsSecret)}`,
    expect: 'bad',
  },
  {
    name: 'jku header pointing elsewhere, attacker key',
    app: 'hs',
    auth: () =>
      `Bearer ${hs({ ...H, jku: 'http://127.0.0.1:1/jwks', kid: '../../dev/null' }, claims(), 'attacker')}`,
    expect: 'bad',
  },
  { name: 'five-part (JWE-shaped) token', app: 'hs', auth: (k) => `Bearer ${k.goodHs}.a.b`, expect: 'bad' },
  { name: 'garbage token a.b.c', app: 'hs', auth: () => 'Bearer a.b.c', expect: 'bad' },
  { name: 'lower-case bearer', app: 'hs', auth: (k) => `bearer ${k.goodHs}`, expect: 'bad' },
  { name: 'BEARER upper case', app: 'hs', auth: (k) => `BEARER ${k.goodHs}`, expect: 'bad' },
  { name: 'two spaces after Bearer', app: 'hs', auth: (k) => `Bearer  ${k.goodHs}`, expect: 'bad' },
  { name: 'token without a scheme', app: 'hs', auth: (k) => k.goodHs, expect: 'bad' },
  {
    name: 'Basic scheme',
    app: 'hs',
    auth: () => `Basic ${Buffer.from('admin:admin').toString('base64')}`,
    expect: 'bad',
  },
  {
    name: 'two tokens in one header',
    app: 'hs',
    auth: (k) => `Bearer ${k.goodHs}, Bearer ${k.goodHs}`,
    expect: 'bad',
  },
  {
    name: 'token in the query string only',
    app: 'hs',
    auth: () => undefined,
    query: (k) => `access_token=${k.goodHs}&token=${k.goodHs}`,
    expect: 'none',
  },
  {
    name: 'token in a cookie only',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ cookie: `token=${k.goodHs}` }),
    expect: 'none',
  },
  {
    // x-api-key carries access keys (ik_...): an admin JWT there is an invalid access key.
    name: 'token in x-api-key only',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ 'x-api-key': k.goodHs }),
    expect: 'bad',
  },
  {
    name: 'wrong role',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ role: 'authenticated' }), k.hsSecret)}`,
    expect: 'notAdmin',
  },
  {
    name: 'no role',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ role: undefined }), k.hsSecret)}`,
    expect: 'notAdmin',
  },
  {
    name: 'role in another case',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ role: 'PROJECT_ADMIN' }), k.hsSecret)}`,
    expect: 'notAdmin',
  },
  {
    name: 'role as an array',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ role: [ROLE] }), k.hsSecret)}`,
    expect: 'notAdmin',
  },
  {
    name: 'role with trailing space',
    app: 'hs',
    auth: (k) => `Bearer ${hs(H, claims({ role: `${ROLE} ` }), k.hsSecret)}`,
    expect: 'notAdmin',
  },
  // Access keys (ik_...): forged, revoked, expired, or used beyond what they grant.
  {
    name: 'access key with one flipped character (Bearer)',
    app: 'hs',
    auth: (k) => `Bearer ${flipHex(k.akAll, 40)}`,
    expect: 'badKey',
  },
  {
    name: 'access key with one flipped character (x-api-key)',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ 'x-api-key': flipHex(k.akAll, k.akAll.length - 1) }),
    expect: 'badKey',
  },
  {
    name: 'access key with an upper-case hex digit (malformed)',
    app: 'hs',
    auth: (k) =>
      `Bearer ${k.akAll.slice(0, -1)}${k.akAll.at(-1)!.toUpperCase() === k.akAll.at(-1) ? 'F' : k.akAll.at(-1)!.toUpperCase()}`,
    expect: 'badKey',
  },
  {
    name: 'access key truncated to its listed prefix',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ 'x-api-key': k.akAll.slice(0, 11) }),
    expect: 'badKey',
  },
  { name: 'revoked access key (Bearer)', app: 'hs', auth: (k) => `Bearer ${k.akRevoked}`, expect: 'badKey' },
  {
    name: 'revoked access key (x-api-key)',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ 'x-api-key': k.akRevoked }),
    expect: 'badKey',
  },
  { name: 'expired access key', app: 'hs', auth: (k) => `Bearer ${k.akExpired}`, expect: 'badKey' },
  {
    name: 'admin JWT and a valid access key at once',
    app: 'hs',
    auth: (k) => `Bearer ${k.goodHs}`,
    extraHeaders: (k) => ({ 'x-api-key': k.akAll }),
    expect: 'badKey',
  },
  {
    name: 'a valid access key in both headers at once',
    app: 'hs',
    auth: (k) => `Bearer ${k.akAll}`,
    extraHeaders: (k) => ({ 'x-api-key': k.akAll }),
    expect: 'badKey',
  },
  {
    name: 'access key out of its scope (secrets:list only)',
    app: 'hs',
    auth: (k) => `Bearer ${k.akListOnly}`,
    expect: 'scope',
    routes: [],
  },
  {
    name: 'access key outside its key patterns (OTHER_*)',
    app: 'hs',
    auth: () => undefined,
    extraHeaders: (k) => ({ 'x-api-key': k.akOtherKeys }),
    expect: 'pattern',
    routes: [],
  },
  {
    name: 'access key on the admin-only endpoints',
    app: 'hs',
    auth: (k) => `Bearer ${k.akAll}`,
    expect: 'adminOnly',
    routes: [
      { method: 'GET', url: '/api/access-keys' },
      { method: 'POST', url: '/api/access-keys', payload: { name: 'escalate', scopes: ['secrets:read'] } },
      { method: 'DELETE', url: '/api/access-keys/00000000-0000-4000-8000-000000000000' },
      { method: 'GET', url: '/api/keys/status' },
      { method: 'POST', url: '/api/keys/rewrap', payload: {} },
    ],
  },
  // RS256-configured service
  {
    name: 'HS/RS confusion: HS256 signed with the public key',
    app: 'rs',
    auth: (k) => `Bearer ${hs(H, claims(), k.publicPem)}`,
    expect: 'bad',
  },
  {
    name: 'HS/RS confusion: public key without PEM newlines',
    app: 'rs',
    auth: (k) => `Bearer ${hs(H, claims(), k.publicPem.trim())}`,
    expect: 'bad',
  },
  {
    name: 'HS256 signed with an empty secret',
    app: 'rs',
    auth: () => `Bearer ${hs(H, claims(), '')}`,
    expect: 'bad',
  },
  {
    name: 'alg none on the RS256 service',
    app: 'rs',
    auth: () => `Bearer ${b64({ alg: 'none' })}.${b64(claims())}.`,
    expect: 'bad',
  },
  {
    name: 'RS256 signed by another key pair',
    app: 'rs',
    auth: (k) => `Bearer ${rs({ alg: 'RS256', typ: 'JWT' }, claims(), k.otherPrivatePem)}`,
    expect: 'bad',
  },
  {
    name: 'RS256 signature altered',
    app: 'rs',
    auth: (k) => `Bearer ${flip(k.goodRs, k.goodRs.length - 10)}`,
    expect: 'bad',
  },
  {
    name: 'RS256 expired',
    app: 'rs',
    auth: (k) => `Bearer ${rs({ alg: 'RS256' }, claims({ exp: now() - 10 }), k.privatePem)}`,
    expect: 'bad',
  },
  {
    name: 'RS256 wrong role',
    app: 'rs',
    auth: (k) => `Bearer ${rs({ alg: 'RS256' }, claims({ role: 'anon' }), k.privatePem)}`,
    expect: 'notAdmin',
  },
];

const ROUTES = [
  { method: 'GET', url: '/api/secrets' },
  { method: 'GET', url: '/api/secrets/TARGET' },
  { method: 'POST', url: '/api/secrets', payload: { key: 'ATTACK', value: 'attacker-value-123' } },
  { method: 'PUT', url: '/api/secrets/TARGET', payload: { value: 'attacker-value-456' } },
  { method: 'DELETE', url: '/api/secrets/TARGET' },
] as const;
// Every secrets route but the listing: an access key that may list is allowed to, and a key
// limited to OTHER_* lists (an empty page) without seeing TARGET.
const KEYED_ROUTES = ROUTES.filter((r) => r.url !== '/api/secrets' || r.method !== 'GET');
for (const a of ATTACKS) if (a.routes?.length === 0) a.routes = KEYED_ROUTES;

const EXPECTED = {
  none: {
    status: 401,
    error: 'AUTH_INVALID_CREDENTIALS',
    message: (m: string) => m === errors.noCredentials().message,
  },
  bad: {
    status: 401,
    error: 'AUTH_UNAUTHORIZED',
    // Words only (the signature hint names JWT_SECRET and DATA_DIR, and asks a question):
    // nothing of the token, which expectNoEcho checks as well.
    message: (m: string) => /^Invalid token: [a-z ()"<>:,?A-Z_]+$/.test(m),
  },
  badKey: {
    status: 401,
    error: 'AUTH_UNAUTHORIZED',
    // Revoked and expired keys say when (a timestamp); nothing else of the key.
    message: (m: string) => /^Invalid token: [a-zA-Z0-9 ()":,.-]+$/.test(m),
  },
  notAdmin: {
    status: 403,
    error: 'AUTH_UNAUTHORIZED',
    message: (m: string) => m === errors.notAdmin().message,
  },
  scope: {
    status: 403,
    error: 'AUTH_UNAUTHORIZED',
    message: (m: string) =>
      /^Access key "ak-list" lacks the scope secrets:[a-z]+ \(it has: secrets:list\)$/.test(m),
  },
  pattern: {
    status: 403,
    error: 'AUTH_UNAUTHORIZED',
    message: (m: string) =>
      /^Access key "ak-other" may not access secret [A-Z]+ \(allowed: OTHER_\*\)$/.test(m),
  },
  adminOnly: {
    status: 403,
    error: 'AUTH_UNAUTHORIZED',
    message: (m: string) =>
      /^Admin access required: access key "ak-all" cannot use [A-Z]+ \/api\/[a-z/:-]+$/.test(m),
  },
};

// A valid access key refused for its scope or patterns was still used: last_used_at may move.
const IGNORE = { ignoreColumns: ['last_used_at'] };

let hsApp: TestApp;
let rsApp: TestApp;
let keys: Keys;
const targetValue = secretValue('target');
const figures = { attacks: 0, requests: 0, refused: 0 };

beforeAll(async () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  hsApp = await createTestApp({ env: { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD } });
  rsApp = await createTestApp({
    env: {
      JWT_ALGORITHM: 'RS256',
      JWT_PUBLIC_KEY: publicPem,
      JWT_SECRET: '',
      JWT_ISSUER: ISS,
      JWT_AUDIENCE: AUD,
    },
  });
  keys = {
    hsSecret: hsApp.jwtSecret,
    publicPem,
    privatePem,
    otherPrivatePem: other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    goodHs: forbid(hs(H, claims({ sub: 'good' }), hsApp.jwtSecret)),
    goodRs: forbid(rs({ alg: 'RS256', typ: 'JWT' }, claims({ sub: 'good' }), privatePem)),
    akAll: '',
    akRevoked: '',
    akExpired: '',
    akListOnly: '',
    akOtherKeys: '',
  };
  const admin = { authorization: `Bearer ${keys.goodHs}` };
  const accessKey = async (name: string, body: object) => {
    const res = await hsApp.app.inject({
      method: 'POST',
      url: '/api/access-keys',
      headers: admin,
      payload: { name, ...body },
    });
    expect(res.statusCode, res.body).toBe(201);
    return { id: res.json().id as string, token: forbid(res.json().token as string) };
  };
  const ALL = ['secrets:read', 'secrets:write', 'secrets:delete', 'secrets:list'];
  keys.akAll = (await accessKey('ak-all', { scopes: ALL })).token;
  keys.akListOnly = (await accessKey('ak-list', { scopes: ['secrets:list'] })).token;
  keys.akOtherKeys = (await accessKey('ak-other', { scopes: ALL, keys: ['OTHER_*'] })).token;
  const revoked = await accessKey('ak-revoked', { scopes: ALL });
  keys.akRevoked = revoked.token;
  const rv = await hsApp.app.inject({
    method: 'DELETE',
    url: `/api/access-keys/${revoked.id}`,
    headers: admin,
  });
  expect(rv.statusCode, rv.body).toBe(200);
  const expired = await accessKey('ak-expired', {
    scopes: ALL,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  });
  keys.akExpired = expired.token;
  // Time passes: the API only accepts a future expiry, so the clock is moved in the row.
  await hsApp.db.query(`UPDATE access_keys SET expires_at = now() - interval '1 minute' WHERE id = $1`, [
    expired.id,
  ]);
  for (const [t, token] of [
    [hsApp, keys.goodHs],
    [rsApp, keys.goodRs],
  ] as const) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: { authorization: `Bearer ${token}` },
      payload: { key: 'TARGET', value: targetValue, isReserved: false },
    });
    expect(res.statusCode).toBe(201);
  }
});
afterAll(async () => {
  // The catalogue's size beside the count that ran (attacks also counts the raw-socket ones).
  report('token-attacks', backend, { catalogue: ATTACKS.length, ...figures });
  await hsApp?.close();
  await rsApp?.close();
});

describe('control: genuine tokens are accepted (the catalogue is not vacuous)', () => {
  it('accepts a correct HS256 token and a correct RS256 token', async () => {
    for (const [t, token] of [
      [hsApp, keys.goodHs],
      [rsApp, keys.goodRs],
    ] as const) {
      const res = await t.app.inject({
        url: '/api/secrets/TARGET',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.json()).toEqual({ key: 'TARGET', value: targetValue });
    }
  });

  it('accepts the genuine access keys the access-key attacks are derived from', async () => {
    for (const headers of [
      { authorization: `Bearer ${keys.akAll}` },
      { 'x-api-key': keys.akAll },
      { authorization: `Bearer ${keys.akListOnly}` },
    ]) {
      const res = await hsApp.app.inject({ url: '/api/secrets', headers });
      expect(res.statusCode, res.body).toBe(200);
    }
    const got = await hsApp.app.inject({ url: '/api/secrets/TARGET', headers: { 'x-api-key': keys.akAll } });
    expect(got.json()).toEqual({ key: 'TARGET', value: targetValue });
    const other = await hsApp.app.inject({ url: '/api/secrets', headers: { 'x-api-key': keys.akOtherKeys } });
    expect(other.statusCode).toBe(200);
    expect(other.body).not.toContain('TARGET');
  });
});

describe(`a catalogue of ${ATTACKS.length} forged or abused credentials`, () => {
  it('has at least 25 entries', () => expect(ATTACKS.length).toBeGreaterThanOrEqual(25));

  it.each(ATTACKS.map((a) => [a.name, a] as const))('refuses: %s', async (_name, attack) => {
    const t = attack.app === 'hs' ? hsApp : rsApp;
    const before = await tableDigest(t.db, IGNORE);
    const auth = attack.auth(keys);
    const want = EXPECTED[attack.expect];
    figures.attacks++;
    for (const route of attack.routes ?? ROUTES) {
      const qs = attack.query ? `?${attack.query(keys)}` : '';
      const res = await t.app.inject({
        method: route.method,
        url: `${route.url}${qs}`,
        headers: { ...(auth === undefined ? {} : { authorization: auth }), ...attack.extraHeaders?.(keys) },
        ...('payload' in route ? { payload: route.payload } : {}),
      });
      figures.requests++;
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(want.status);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['error', 'message', 'nextActions', 'statusCode']);
      expect(body.error).toBe(want.error);
      expect(want.message(body.message), body.message).toBe(true);
      const sent = [auth, ...Object.values(attack.extraHeaders?.(keys) ?? {})].filter((h) => h !== undefined);
      expectNoEcho(res.body, [
        targetValue,
        ...sent.flatMap((h) => h.split(/[ .]/).filter((p) => p.length >= 8)),
      ]);
      figures.refused++;
    }
    expect(await tableDigest(t.db, IGNORE), 'a refused request changed the tables').toBe(before);
  });
});

describe('duplicate Authorization headers (raw HTTP, as a proxy might pass them)', () => {
  let port = 0;
  beforeAll(async () => {
    await hsApp.app.listen({ host: '127.0.0.1', port: 0 });
    port = (hsApp.app.server.address() as { port: number }).port;
  });

  const raw = (headers: string[]) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      let data = '';
      sock.on('data', (d) => {
        data += d.toString();
      });
      sock.on('error', reject);
      sock.on('end', () => {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]);
        resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
      });
      sock.write(
        `GET /api/secrets/TARGET HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.join('\r\n')}\r\n\r\n`,
      );
    });

  it.each([
    [
      'a forged token first, the genuine one second',
      (g: string) => [`Authorization: Bearer a.b.c`, `Authorization: Bearer ${g}`],
    ],
    [
      'the genuine token first, a forged one second',
      (g: string) => [`Authorization: Bearer ${g}`, `Authorization: Bearer a.b.c`],
    ],
    ['the genuine token twice', (g: string) => [`Authorization: Bearer ${g}`, `Authorization: Bearer ${g}`]],
  ])('refuses %s with 401 AUTH_UNAUTHORIZED', async (_n, make) => {
    figures.attacks++;
    figures.requests++;
    const res = await raw(make(keys.goodHs));
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error).toBe('AUTH_UNAUTHORIZED');
    expect(res.body).not.toContain(targetValue);
    figures.refused++;
  });

  it('scans every log line and audit row of the run: no value and no token', async () => {
    for (const t of [hsApp, rsApp]) expect((await scanAuditLog(t.db)).rows).toBeGreaterThan(0);
    const { lines } = scanLogs();
    expect(lines).toBeGreaterThan(0);
  });
});
