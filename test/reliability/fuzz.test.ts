import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBody, listQuery, updateBody } from '../../src/secrets/schemas.js';
import { backend, createTestApp, type TestApp } from '../helpers/app.js';
import { trackValue } from '../helpers/secrets.js';
import { expectNoEcho, forbid, scanLogs } from './hygiene.js';
import { pick, progress, report } from './mode.js';
import { tableDigest } from './snapshot.js';

/**
 * Property-based fuzzing of every secrets route through the real HTTP layer.
 * Requests are generated valid and invalid; the zod schemas of src/secrets/schemas.ts are
 * the oracle for which ones must be refused with 400. Invariants on every request: no 5xx,
 * every error has the documented body, a refused request changes no table (digest of
 * every row), an accepted write reads back byte for byte, nothing echoes a value.
 */

const LIMIT = 1024; // a small MAX_VALUE_BYTES makes "near the limit" cheap to generate
const RUNS = Number(process.env.RELIABILITY_FUZZ_RUNS) || pick(1_200, 100_000);

let t: TestApp;
let authHeader: string;
const figures = {
  requests: 0,
  accepted: 0,
  refused: 0,
  readbacks: 0,
  resets: 0,
  ifMatch: 0,
  preconditionFailed: 0,
  byStatus: {} as Record<number, number>,
};

beforeAll(async () => {
  t = await createTestApp({ env: { MAX_VALUE_BYTES: String(LIMIT) } });
  authHeader = `Bearer ${forbid(t.token('fuzzer'))}`;
});
afterAll(async () => {
  report('fuzz', backend, figures);
  await t?.close();
});

// ---- generators -------------------------------------------------------------------
const HOT_KEYS = ['A', 'B', 'FUZZ_1', 'FUZZ_2', 'K_0'];
const validKey = fc.oneof(
  { arbitrary: fc.constantFrom(...HOT_KEYS), weight: 4 },
  { arbitrary: fc.stringMatching(/^[A-Z0-9_]{1,12}$/), weight: 1 },
  { arbitrary: fc.constantFrom('X'.repeat(128), `M${'_'.repeat(127)}`), weight: 1 },
);
const badKey = fc.oneof(
  fc.constantFrom('', 'a', 'A-B', 'A B', '../etc', 'Ä', 'X'.repeat(129), 'A\u0000', 'A\n', 'ＡＢ'),
  fc.string({ unit: 'binary', maxLength: 20 }),
);
const key = fc.oneof({ arbitrary: validKey, weight: 6 }, { arbitrary: badKey, weight: 1 });

const nearLimit = fc
  .tuple(fc.constantFrom('a', 'é', '€', '😀'), fc.integer({ min: -3, max: 3 }))
  .map(([ch, d]) => ch.repeat(Math.max(1, Math.floor(LIMIT / Buffer.byteLength(ch)) + d)));
const distinctive = fc
  .tuple(fc.stringMatching(/^[0-9a-f]{16}$/), fc.string({ unit: 'binary', maxLength: 40 }))
  .map(([h, rest]) => `sv_fuzz_${h}${rest}`);
const validValue = fc.oneof(
  { arbitrary: distinctive, weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme-composite', minLength: 1, maxLength: 40 }), weight: 1 },
  { arbitrary: nearLimit, weight: 2 },
  {
    arbitrary: fc.constantFrom(' padded ', '\u0000nul', '\r\n', 'e\u0301', '\uFEFFbom', '{"json":1}'),
    weight: 1,
  },
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);
const badValue = fc.oneof(fc.constant(''), fc.constant('a\uD800b'), fc.constant('\uDC00'), wrongType);
const value = fc.oneof({ arbitrary: validValue, weight: 8 }, { arbitrary: badValue, weight: 1 });
const bool = fc.oneof({ arbitrary: fc.boolean(), weight: 6 }, { arbitrary: wrongType, weight: 1 });
const expiresAt = fc.oneof(
  { arbitrary: fc.constant(null), weight: 3 },
  { arbitrary: fc.constantFrom('2099-01-01T00:00:00Z', '2099-06-01T12:00:00+02:00'), weight: 3 },
  { arbitrary: fc.constant('2001-01-01T00:00:00Z'), weight: 1 }, // already expired
  { arbitrary: fc.constantFrom('tomorrow', '2030-13-01T00:00:00Z', '2030-01-01', '', 'NaN'), weight: 1 },
  { arbitrary: wrongType, weight: 1 },
);
const description = fc.oneof(
  { arbitrary: fc.constant(null), weight: 3 },
  { arbitrary: fc.string({ maxLength: 30 }), weight: 8 },
  { arbitrary: fc.oneof(fc.constant('d'.repeat(1025)), fc.constant('nul\u0000'), wrongType), weight: 1 },
);
const extra = fc.dictionary(
  fc.constantFrom('extra', 'id', '__proto__', 'constructor', 'version'),
  fc.jsonValue(),
  {
    maxKeys: 1,
  },
);
const withExtra = <T extends object>(a: fc.Arbitrary<T>) =>
  fc
    .tuple(a, fc.option(extra, { freq: 8 }))
    .map(([b, e]) => (e ? { ...b, ...JSON.parse(JSON.stringify(e)) } : b) as Record<string, unknown>);

const createJson = withExtra(
  fc.record({ key, value, isReserved: bool, expiresAt, description }, { requiredKeys: ['key', 'value'] }),
).chain((b) => fc.oneof({ arbitrary: fc.constant(b), weight: 9 }, { arbitrary: dropOne(b), weight: 1 }));
const updateJson = withExtra(
  fc.record({ value, isActive: bool, isReserved: bool, expiresAt, description }, { requiredKeys: [] }),
);
function dropOne(b: Record<string, unknown>) {
  const ks = Object.keys(b);
  return ks.length === 0
    ? fc.constant(b)
    : fc.constantFrom(...ks).map((k) => Object.fromEntries(Object.entries(b).filter(([x]) => x !== k)));
}

// Keys as they appear in a URL: encoded, raw, traversal, double-encoded, malformed.
const pathKey = fc.oneof(
  { arbitrary: validKey.map((k) => ({ raw: k, key: k as string | undefined })), weight: 8 },
  {
    arbitrary: fc.constantFrom(
      { raw: '%41', key: 'A' },
      { raw: 'FUZZ%5F1', key: 'FUZZ_1' },
      { raw: '..%2F..%2Fetc%2Fpasswd', key: undefined },
      { raw: '%2e%2e', key: undefined },
      { raw: '..', key: undefined },
      { raw: 'A%00', key: undefined },
      { raw: '%2541', key: undefined },
      { raw: '%ZZ', key: undefined },
      { raw: 'A%2FB', key: undefined },
      { raw: 'a', key: undefined },
      { raw: 'A/', key: 'A' },
      { raw: 'A?x=1', key: 'A' },
      { raw: 'A;jsessionid=1', key: undefined },
      { raw: 'X'.repeat(300), key: undefined },
      { raw: '%C3%84', key: undefined },
    ),
    weight: 2,
  },
  { arbitrary: badKey.map((k) => ({ raw: encodeURIComponent(k), key: undefined })), weight: 1 },
);
const listQs = fc.record(
  {
    limit: fc.oneof(fc.integer({ min: -2, max: 1002 }).map(String), fc.constantFrom('1.5', 'x', '')),
    cursor: fc.oneof(
      fc.constantFrom('djE6MQ', 'djE6OTk5OTk5OTk5OTk5OTk5OTk5OQ', '%%%', 'x'),
      fc.string({ maxLength: 10 }),
    ),
    prefix: fc.oneof(fc.constantFrom('A', 'FUZZ', ''), fc.string({ maxLength: 6 })),
    active: fc.constantFrom('true', 'false', 'yes', '1'),
  },
  { requiredKeys: [] },
);

// Raw bodies and odd transport: the content-type and parser paths.
const rawBody = fc.oneof(
  fc.constantFrom('', 'null', '[]', '"str"', '42', '{', '{"key":', '{"key":"A","value":"v"', 'key=A&value=v'),
  fc.string({ maxLength: 40 }),
  fc.constant(`{"key":"A","value":"${'x'.repeat(LIMIT * 7 + 70_000)}"}`), // beyond the body limit
);
const contentType = fc.constantFrom(
  undefined,
  'application/json',
  'APPLICATION/JSON',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/vnd.api+json',
  'application/json, text/plain',
  ';;;',
);
const oddHeaders = fc.oneof(
  { arbitrary: fc.constant({}), weight: 6 },
  {
    arbitrary: fc.constantFrom<Record<string, string>>(
      { 'x-request-id': '../../etc' },
      { 'x-request-id': 'x'.repeat(500) },
      { 'x-http-method-override': 'DELETE' },
      { accept: 'text/html' },
      { 'content-encoding': 'gzip' },
      { 'x-forwarded-for': '1.2.3.4, ::1' },
      { authorization: '' },
      { authorization: 'Basic YWRtaW46YWRtaW4=' },
      { authorization: 'Bearer' },
    ),
    weight: 1,
  },
);

/**
 * If-Match on PUT and DELETE. The tag is resolved when the request is sent (it depends on the
 * state): the current ETag of the key, an ETag it had before (stale), garbage, the current tag
 * as a weak one (never matches: strong comparison), '*', or a list holding the current tag.
 */
type IfMatch = 'current' | 'stale' | 'garbage' | 'weak' | 'star' | 'list';
const ifMatch = fc.option(
  fc.constantFrom<IfMatch>('current', 'current', 'stale', 'garbage', 'weak', 'star', 'list'),
  { freq: 2 },
);
/** Kinds that can never admit the current state: a write sent with one is never accepted. */
const NEVER_MATCHES = new Set<IfMatch | null | undefined>(['stale', 'garbage', 'weak']);

type Route = 'create' | 'update' | 'reveal' | 'remove' | 'list';
interface Req {
  route: Route;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  /** JSON body (object form), when sent as JSON. */
  json?: Record<string, unknown>;
  raw?: { body: string; contentType: string | undefined };
  headers: Record<string, string>;
  /** The key the URL decodes to, when it is one. */
  key?: string | undefined;
  ifMatch?: IfMatch | null;
}

const request: fc.Arbitrary<Req> = fc.oneof(
  {
    arbitrary: fc.record({ b: createJson, h: oddHeaders }).map(({ b, h }) => ({
      route: 'create' as const,
      method: 'POST' as const,
      url: '/api/secrets',
      json: b,
      headers: h,
    })),
    weight: 5,
  },
  {
    arbitrary: fc.record({ p: pathKey, b: updateJson, h: oddHeaders, m: ifMatch }).map(({ p, b, h, m }) => ({
      route: 'update' as const,
      method: 'PUT' as const,
      url: `/api/secrets/${p.raw}`,
      json: b,
      headers: h,
      key: p.key,
      ifMatch: m,
    })),
    weight: 4,
  },
  {
    arbitrary: fc.record({ p: pathKey, h: oddHeaders }).map(({ p, h }) => ({
      route: 'reveal' as const,
      method: 'GET' as const,
      url: `/api/secrets/${p.raw}`,
      headers: h,
      key: p.key,
    })),
    weight: 4,
  },
  {
    arbitrary: fc.record({ p: pathKey, h: oddHeaders, m: ifMatch }).map(({ p, h, m }) => ({
      route: 'remove' as const,
      method: 'DELETE' as const,
      url: `/api/secrets/${p.raw}`,
      headers: h,
      key: p.key,
      ifMatch: m,
    })),
    weight: 2,
  },
  {
    arbitrary: fc.record({ q: listQs, h: oddHeaders }).map(({ q, h }) => ({
      route: 'list' as const,
      method: 'GET' as const,
      url: `/api/secrets?${new URLSearchParams(q as Record<string, string>)}`,
      headers: h,
    })),
    weight: 1,
  },
  {
    arbitrary: fc
      .record({ post: fc.boolean(), p: pathKey, body: rawBody, ct: contentType, h: oddHeaders, m: ifMatch })
      .map(({ post, p, body, ct, h, m }) =>
        post
          ? {
              route: 'create' as const,
              method: 'POST' as const,
              url: '/api/secrets',
              raw: { body, contentType: ct },
              headers: h,
            }
          : {
              route: 'update' as const,
              method: 'PUT' as const,
              url: `/api/secrets/${p.raw}`,
              raw: { body, contentType: ct },
              headers: h,
              key: p.key,
              ifMatch: m,
            },
      ),
    weight: 2,
  },
);

// ---- oracle -------------------------------------------------------------------------
/** What the schemas say about a JSON request sent with valid credentials: undefined = not judged. */
function schemaVerdict(r: Req): boolean | undefined {
  if (r.raw || Object.keys(r.headers).length > 0) return undefined;
  const keyOk = r.key !== undefined;
  if (r.route === 'create') return createBody.safeParse(r.json).success;
  if (r.route === 'update') return keyOk ? updateBody.safeParse(r.json).success : undefined;
  if (r.route === 'list') {
    const qs = Object.fromEntries(new URL(r.url, 'http://x').searchParams);
    return listQuery.safeParse(qs).success;
  }
  return keyOk ? true : undefined;
}

const ALLOWED: Record<Route, number[]> = {
  create: [201, 409, 413],
  update: [200, 403, 404, 412, 413],
  reveal: [200, 404],
  remove: [200, 403, 404, 412],
  list: [200, 400], // 400: a cursor that decodes to nothing
};

/**
 * The distinctive values of a request, for the echo check. Only these: a short generic value
 * ("constructor") may equal an unknown field name the 400 message names, a false alarm.
 */
function valuesIn(r: Req): string[] {
  const v = r.json?.value;
  return typeof v === 'string' && v.startsWith('sv_fuzz_') ? [v] : [];
}

/** Every ETag seen per key (from any response): the source of stale tags. */
const seenEtags = new Map<string, Set<string>>();
function noteEtag(key: string | undefined, etag: unknown) {
  if (!key || typeof etag !== 'string') return;
  const set = seenEtags.get(key) ?? new Set<string>();
  set.add(etag);
  seenEtags.set(key, set);
}
async function currentEtag(key: string | undefined): Promise<string | undefined> {
  if (!key) return undefined;
  const res = await t.app.inject({
    url: `/api/secrets/${key}/versions`,
    headers: { authorization: authHeader },
  });
  figures.requests++;
  const etag = res.headers.etag as string | undefined;
  noteEtag(key, etag);
  return etag;
}
/** The If-Match header value for a request, from the state right before it is sent. */
async function resolveIfMatch(r: Req): Promise<string | undefined> {
  if (!r.ifMatch) return undefined;
  figures.ifMatch++;
  const fake = '"00000000-0000-4000-8000-000000000000.1"';
  if (r.ifMatch === 'star') return '*';
  if (r.ifMatch === 'garbage')
    return fc.sample(fc.constantFrom('garbage', '""', '"x"', 'W/', ',,', fake), 1)[0];
  const cur = await currentEtag(r.key);
  if (r.ifMatch === 'current') return cur ?? fake;
  if (r.ifMatch === 'weak') return `W/${cur ?? fake}`;
  if (r.ifMatch === 'list') return `"nope", ${cur ?? fake}`;
  const stale = [...(seenEtags.get(r.key ?? '') ?? [])].filter((e) => e !== cur);
  return stale.at(-1) ?? fake;
}

let digest = '';
async function check(r: Req): Promise<void> {
  for (const v of valuesIn(r)) trackValue(v);
  const tag = await resolveIfMatch(r);
  const headers: Record<string, string> = {
    authorization: authHeader,
    ...r.headers,
    ...(tag === undefined ? {} : { 'if-match': tag }),
  };
  const res = await t.app.inject({
    method: r.method,
    url: r.url,
    headers: r.raw?.contentType ? { ...headers, 'content-type': r.raw.contentType } : headers,
    ...(r.json ? { payload: r.json } : r.raw ? { payload: r.raw.body } : {}),
  });
  figures.requests++;
  figures.byStatus[res.statusCode] = (figures.byStatus[res.statusCode] ?? 0) + 1;
  const status = res.statusCode;
  expect(status, `${r.method} ${r.url.slice(0, 80)} -> ${res.body.slice(0, 200)}`).toBeLessThan(500);
  noteEtag(r.key, res.headers.etag);
  // Compare-and-set: a tag that cannot match the current state never lets a write through.
  if (NEVER_MATCHES.has(r.ifMatch)) expect(status, `If-Match ${tag} accepted`).toBeGreaterThanOrEqual(400);
  if (status === 412) {
    figures.preconditionFailed++;
    expect(r.ifMatch === 'current' || r.ifMatch === 'star' || r.ifMatch === 'list').toBe(false);
  }

  const verdict = schemaVerdict(r);
  if (verdict === false) expect(status, `schema refuses: ${res.body.slice(0, 200)}`).toBe(400);
  if (verdict === true)
    expect(ALLOWED[r.route], `schema accepts: ${res.body.slice(0, 200)}`).toContain(status);

  if (status >= 400) {
    figures.refused++;
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(
      expect.arrayContaining(['error', 'message', 'statusCode'].sort()),
    );
    expect(body.statusCode).toBe(status);
    expectNoEcho(res.body, valuesIn(r));
    const after = await tableDigest(t.db);
    expect(after, `refused ${r.method} ${r.url.slice(0, 80)} (${status}) changed the tables`).toBe(digest);
    return;
  }
  figures.accepted++;
  // An accepted write of a value must read back byte for byte.
  const written = r.json?.value;
  const writtenKey = r.route === 'create' ? (r.json?.key as string) : r.key;
  if ((r.route === 'create' || r.route === 'update') && typeof written === 'string' && writtenKey) {
    const back = await t.app.inject({
      method: 'GET',
      url: `/api/secrets/${writtenKey}`,
      headers: { authorization: authHeader },
    });
    figures.requests++;
    figures.readbacks++;
    if (back.statusCode === 200) {
      expect(Buffer.from(back.json().value, 'utf8').equals(Buffer.from(written, 'utf8'))).toBe(true);
    } else {
      // Written but not readable only when the write left it inactive or expired.
      expect(back.statusCode).toBe(404);
      expect(back.json().message).toMatch(/inactive|expired/);
    }
  }
  digest = await tableDigest(t.db);
}

it(`keeps every invariant over ${RUNS} generated requests`, async () => {
  digest = await tableDigest(t.db);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      await check(r);
      if (++n % 500 === 0) scanLogs();
      // The digest reads every row, so a table that only grows makes each request slower
      // than the last; starting from empty tables every few thousand requests keeps a
      // 100,000-request run linear (collisions on the hot keys happen well within that).
      if (n % 2_500 === 0) {
        await t.reset();
        seenEtags.clear();
        digest = await tableDigest(t.db);
        figures.resets++;
        progress('fuzz', backend, figures);
      }
    }),
    { numRuns: RUNS, endOnFailure: true },
  );
  scanLogs();
  expect(figures.requests).toBeGreaterThanOrEqual(RUNS);
  // The generator must actually reach both sides of every route.
  expect(figures.accepted).toBeGreaterThan(RUNS / 10);
  expect(figures.refused).toBeGreaterThan(RUNS / 10);
  expect(figures.preconditionFailed).toBeGreaterThan(0);
}, 3_600_000);
