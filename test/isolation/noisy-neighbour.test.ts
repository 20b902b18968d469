import { expect, it } from 'vitest';
import { apiKey, bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Issue 21, the test that keeps isolation true: one caller's steady benign reads and writes
 * while other callers send hostile or heavy traffic (NUL and surrogate keys on every route,
 * oversized bodies, 1000-reference renders, concurrent 1000-entry imports, bad tokens,
 * refused scopes). The benign stream has no failure; every refusal by the guard left exactly
 * one audit row (found by its request id); the audit chain verifies afterwards. Latency is
 * not asserted here (tests do not race the clock). Both backends. The trickled-body case has
 * its own socket test (timeouts.test.ts).
 */
const t = useTestApp({ env: { AUDIT_BATCH_WINDOW_MS: '5' } });

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
  /** Hostile requests whose refusal must leave exactly one audit row (by request id). */
  const oneRow: Promise<{ id: string; kind: string; status: number }>[] = [];
  const refused = (
    who: string,
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ) => {
    const id = `nn-${++rid}`;
    oneRow.push(
      t.app
        .inject({ method, url, headers: { ...headers, 'x-request-id': id }, ...(payload ? { payload } : {}) })
        .then((r) => ({ id, kind: `${method} ${url} (${who})`, status: r.statusCode })),
    );
  };
  /** Heavy requests by kind: what each was answered, for the failure message. */
  const heavy: Promise<{ kind: string; status: number; error?: string }>[] = [];
  const hit = (kind: string, p: Promise<{ statusCode: number; json(): unknown }>) =>
    heavy.push(
      p.then((r) => ({
        kind,
        status: r.statusCode,
        ...(r.statusCode >= 500 ? { error: String((r.json() as { message?: unknown }).message) } : {}),
      })),
    );

  for (let round = 0; round < 5; round++) {
    for (const k of ['%00', 'A%00B', 'X%0A%1B', '%5Cud800']) {
      refused('secrets:list key', 'GET', `/api/secrets/${k}`, apiKey(lister.token));
      refused('secrets:list key', 'PUT', `/api/secrets/${k}`, apiKey(lister.token), { value: 'x' });
      refused('secrets:read key', 'DELETE', `/api/secrets/${k}`, apiKey(reader.token));
      refused('no token', 'GET', `/api/secrets/${k}`, {});
      refused('bad token', 'GET', `/api/secrets/${k}`, bearer('not-a-token'));
    }
    hit(
      'audit filter NUL',
      t.app.inject({ method: 'GET', url: '/api/audit?key=%00', headers: t.auth('hostile') }),
    );
    hit(
      'value over MAX_VALUE_BYTES',
      t.app.inject({
        method: 'POST',
        url: '/api/secrets',
        headers: t.auth('hostile'),
        payload: { key: 'BIG', value: 'x'.repeat(1024 * 1024) },
      }),
    );
    hit(
      '1000-name render',
      t.app.inject({
        method: 'POST',
        url: '/api/secrets/render',
        headers: apiKey(reader.token),
        payload: { template: Array.from({ length: 1000 }, (_, i) => `{{Secrets.MISSING_${i}}}`).join(' ') },
      }),
    );
    for (let b = 0; b < 3; b++)
      hit(
        '1000-entry dry-run import',
        t.app.inject({
          method: 'POST',
          url: '/api/secrets/batch',
          headers: apiKey(writer.token),
          payload: {
            dryRun: true,
            secrets: Array.from({ length: 1000 }, (_, i) => ({ key: `NN_B${round}_${b}_${i}`, value: 'x' })),
          },
        }),
      );
  }

  const benign: Promise<number>[] = [];
  for (let i = 0; i < 100; i++) {
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
  expect(r.filter((x) => x.status !== 401 && x.status !== 403).map((x) => `${x.kind}: ${x.status}`)).toEqual(
    [],
  );
  const counts = await t.db.query<{ request_id: string; n: number }>(
    `SELECT request_id, count(*)::int AS n FROM audit_log WHERE request_id LIKE 'nn-%' GROUP BY request_id`,
  );
  const byId = new Map(counts.map((c) => [c.request_id, c.n]));
  expect(
    r.filter((x) => byId.get(x.id) !== 1).map((x) => `${x.id} ${x.kind}: ${byId.get(x.id) ?? 0} rows`),
  ).toEqual([]);
  const verify = await t.app.inject({ method: 'GET', url: '/api/audit/verify', headers: t.auth() });
  expect(verify.statusCode).toBe(200);
  expect(verify.json().intact).toBe(true);
});
