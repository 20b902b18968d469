import { expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Issue 21, the test that keeps isolation true: one caller's steady benign reads and writes
 * while other callers send hostile or heavy traffic (NUL and surrogate keys on every route,
 * oversized bodies, 1000-reference renders, concurrent 1000-entry imports, bad tokens,
 * refused scopes), with the refusal and failed-authentication limits in effect and low
 * enough that the hostile callers cross them. The benign stream has no failure; every
 * refusal is accounted for in the audit log exactly once: by its own row (found by its
 * request id) or, past a limit, in exactly one summary row of its limit and identity or
 * address (`refusals.suppressed`, counted in `version`), so the rows and the counts add up
 * to the refusals sent; the audit chain verifies afterwards. Latency is not asserted here
 * (tests do not race the clock); the summary rows are written by an explicit flush, the one
 * the window's timer and closing the app run. Both backends. The trickled-body case has its
 * own socket test (timeouts.test.ts).
 */
const REFUSAL_LIMIT = 10;
const AUTH_FAILURE_LIMIT = 10;
const t = useTestApp({
  env: {
    AUDIT_BATCH_WINDOW_MS: '5',
    REFUSAL_RATE_LIMIT: String(REFUSAL_LIMIT),
    AUTH_FAILURE_RATE_LIMIT: String(AUTH_FAILURE_LIMIT),
  },
});

/** The 429 of the refusal limit (its message names the setting), not another limit's. */
const refusalLimited = (status: number, body: string) =>
  status === 429 && body.includes('REFUSAL_RATE_LIMIT');

it('a benign caller sees no failure while others are hostile or heavy', async () => {
  const value = trackValue(secretValue('nn'));
  for (let i = 0; i < 5; i++) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key: `NN_${i}`, value },
    });
    expect(res.statusCode).toBe(201);
  }
  const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
  const writer = await createAccessKey(t, { scopes: ['secrets:write'] });
  const reader = await createAccessKey(t, { scopes: ['secrets:read'] });

  let rid = 0;
  /** Who each request is audited as (the summary rows name it), by request id. */
  const actorOf = new Map<string, string>();
  const ANON = 'anonymous';
  const actors = {
    'secrets:list key': `access_key:${lister.id}`,
    'secrets:read key': `access_key:${reader.id}`,
    'secrets:write key': `access_key:${writer.id}`,
    'no token': ANON,
    'bad token': ANON,
    hostile: 'admin:hostile',
  } as const;
  type Who = keyof typeof actors;
  interface Answer {
    id: string;
    kind: string;
    status: number;
    body: string;
  }
  /** Hostile requests: each refusal must be accounted for exactly once (by request id). */
  const oneRow: Promise<Answer>[] = [];
  const refused = (
    who: Who,
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ) => {
    const id = `nn-${++rid}`;
    actorOf.set(id, actors[who]);
    oneRow.push(
      t.app
        .inject({ method, url, headers: { ...headers, 'x-request-id': id }, ...(payload ? { payload } : {}) })
        .then((r) => ({ id, kind: `${method} ${url} (${who})`, status: r.statusCode, body: r.body })),
    );
  };
  /** Heavy requests by kind: what each was answered, for the failure message. */
  const heavy: Promise<Answer & { error?: string }>[] = [];
  const hit = (
    kind: string,
    who: Who,
    req: { method: 'GET' | 'POST'; url: string; headers: Record<string, string>; payload?: object },
  ) => {
    const id = `nh-${++rid}`;
    actorOf.set(id, actors[who]);
    heavy.push(
      t.app.inject({ ...req, headers: { ...req.headers, 'x-request-id': id } }).then((r) => ({
        id,
        kind,
        status: r.statusCode,
        body: r.body,
        ...(r.statusCode >= 500 ? { error: String((r.json() as { message?: unknown }).message) } : {}),
      })),
    );
  };

  const benign: Promise<number>[] = [];
  /** The benign caller's reads and writes, 20 reads and 2 updates each time. */
  const benignBurst = (round: number) => {
    for (let j = 0; j < 20; j++) {
      const i = round * 20 + j;
      benign.push(
        t.app
          .inject({ method: 'GET', url: `/api/secrets/NN_${i % 5}`, headers: t.auth('benign') })
          .then((r) => r.statusCode),
      );
      if (i % 10 === 0)
        benign.push(
          t.app
            .inject({
              method: 'PUT',
              url: `/api/secrets/NN_${i % 5}`,
              headers: t.auth('benign'),
              payload: { description: `d${i}` },
            })
            .then((r) => r.statusCode),
        );
    }
  };

  // Five rounds, each sent at once beside a burst of the benign stream; a round's refusals
  // are answered (and so counted) before the next starts, so the hostile callers cross the
  // limits within the run. The heavy requests run on across rounds.
  for (let round = 0; round < 5; round++) {
    const before = oneRow.length;
    benignBurst(round);
    for (const k of ['%00', 'A%00B', 'X%0A%1B', '%5Cud800']) {
      refused('secrets:list key', 'GET', `/api/secrets/${k}`, apiKey(lister.token));
      refused('secrets:list key', 'PUT', `/api/secrets/${k}`, apiKey(lister.token), { value: 'x' });
      refused('secrets:read key', 'DELETE', `/api/secrets/${k}`, apiKey(reader.token));
      refused('no token', 'GET', `/api/secrets/${k}`, {});
      refused('bad token', 'GET', `/api/secrets/${k}`, bearer('not-a-token'));
    }
    hit('audit filter NUL', 'hostile', {
      method: 'GET',
      url: '/api/audit?key=%00',
      headers: t.auth('hostile'),
    });
    hit('value over MAX_VALUE_BYTES', 'hostile', {
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth('hostile'),
      payload: { key: 'BIG', value: 'x'.repeat(1024 * 1024) },
    });
    hit('1000-name render', 'secrets:read key', {
      method: 'POST',
      url: '/api/secrets/render',
      headers: apiKey(reader.token),
      payload: { template: Array.from({ length: 1000 }, (_, i) => `{{Secrets.MISSING_${i}}}`).join(' ') },
    });
    for (let b = 0; b < 3; b++)
      hit('1000-entry dry-run import', 'secrets:write key', {
        method: 'POST',
        url: '/api/secrets/batch',
        headers: apiKey(writer.token),
        payload: {
          dryRun: true,
          secrets: Array.from({ length: 1000 }, (_, i) => ({ key: `NN_B${round}_${b}_${i}`, value: 'x' })),
        },
      });
    await Promise.all(oneRow.slice(before));
  }

  const [b, h, r] = await Promise.all([Promise.all(benign), Promise.all(heavy), Promise.all(oneRow)]);
  expect(b.filter((c) => c !== 200)).toEqual([]);
  // Heavy traffic is answered with what it deserves (4xx, 429 once over a limit, or done),
  // never a 5xx: no gate sheds bulk work with 503 (the bulk gate queues it without a
  // connection; over the per-caller limits it answers 429). On failure, every kind's answers.
  const byKind: Record<string, Record<string, number>> = {};
  for (const x of h) {
    const k = byKind[x.kind] ?? {};
    const s = x.error ? `${x.status} ${x.error}` : String(x.status);
    k[s] = (k[s] ?? 0) + 1;
    byKind[x.kind] = k;
  }
  expect(
    h.filter((x) => x.status >= 500).map((x) => `${x.kind}: ${x.status} ${x.error}`),
    `heavy requests answered, by kind: ${JSON.stringify(byKind)}`,
  ).toEqual([]);
  // Hostile requests are refused: by the guard (401, 403), or past a limit (429).
  expect(r.filter((x) => ![401, 403, 429].includes(x.status)).map((x) => `${x.kind}: ${x.status}`)).toEqual(
    [],
  );
  // The hostile callers did cross the limits (else this test would not exercise them).
  expect(r.some((x) => refusalLimited(x.status, x.body))).toBe(true);
  expect(r.some((x) => x.status === 429 && actorOf.get(x.id) === ANON)).toBe(true);

  // Past a limit, the refusals that left no row of their own are counted in memory; the
  // window's summary rows are written now (as the timer and closing the app do).
  await t.app.suppressedRefusals.flush();
  const counts = await t.db.query<{ request_id: string; n: number }>(
    `SELECT request_id, count(*)::int AS n FROM audit_log
     WHERE request_id LIKE 'nn-%' OR request_id LIKE 'nh-%' GROUP BY request_id`,
  );
  const byId = new Map(counts.map((c) => [c.request_id, c.n]));
  const rows = (x: Answer) => byId.get(x.id) ?? 0;
  // Every hostile refusal left exactly one row, or (answered 429 by a limit) none of its own.
  expect(
    r
      .filter((x) => (x.status === 429 ? rows(x) > 1 : rows(x) !== 1))
      .map((x) => `${x.id} ${x.kind}: ${x.status}, ${rows(x)} rows`),
  ).toEqual([]);
  // The ones without a row are exactly the summary rows' counts: per limit and per identity
  // (the failed-authentication limit counts per address: anonymous, from 127.0.0.1).
  const summaries = await t.db.query<{
    actor: string;
    key: string;
    version: number;
    client_ip: string | null;
  }>(
    `SELECT actor, key, version, client_ip FROM audit_log
     WHERE action = 'refusals.suppressed' AND outcome = 'rate_limited' ORDER BY id`,
  );
  const expected: Record<string, number> = {};
  for (const x of [...r, ...h]) {
    if (x.status !== 429 || rows(x) !== 0) continue;
    const limit = refusalLimited(x.status, x.body) ? 'REFUSAL_RATE_LIMIT' : 'AUTH_FAILURE_RATE_LIMIT';
    const who = `${limit} ${actorOf.get(x.id)}`;
    expected[who] = (expected[who] ?? 0) + 1;
  }
  const summarised: Record<string, number> = {};
  for (const s of summaries) {
    const limit = s.key.split(' ')[0] ?? '';
    expect(s.key).toMatch(/^[A-Z_]+ \d{4}-\d\d-\d\dT[\d:.]+Z\/\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(s.client_ip).toBe('127.0.0.1');
    const who = `${limit} ${s.actor}`;
    // One summary row per limit and identity (or address) in the window.
    expect(summarised[who], `two summary rows for ${who}`).toBeUndefined();
    summarised[who] = s.version;
  }
  expect(summarised).toEqual(expected);
  const verify = await t.app.inject({ method: 'GET', url: '/api/audit/verify', headers: t.auth() });
  expect(verify.statusCode).toBe(200);
  expect(verify.json().intact).toBe(true);
});
