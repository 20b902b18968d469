import { describe, expect, it } from 'vitest';
import { recordedText } from '../../src/storable-text.js';
import { apiKey, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Issue 21 findings 1 and 2: text a caller sends that PostgreSQL cannot store (NUL, unpaired
 * surrogates, controls, over-long) never reaches SQL as sent. A refusal still leaves its own
 * row, in an escaped, bounded form, and cannot fail the group-committed audit batch that other
 * callers' rows share; a query filter that cannot be stored is a 400. Both backends.
 */
const t = useTestApp({ env: { AUDIT_BATCH_WINDOW_MS: '20' } });

const rowsFor = (key: string) =>
  t.db.query<{ actor: string; outcome: string; action: string }>(
    'SELECT actor, outcome, action FROM audit_log WHERE key = $1',
    [key],
  );

describe('finding 1: a NUL byte poisons no shared audit batch', () => {
  it('refused NUL reads leave one escaped row each and every concurrent admin read succeeds', async () => {
    const value = trackValue(secretValue('iso'));
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: t.auth(),
      payload: { key: 'ISO_TARGET', value },
    });
    expect(created.statusCode).toBe(201);
    const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
    const hostile = [
      ...Array.from({ length: 20 }, () =>
        t.app.inject({ method: 'GET', url: '/api/secrets/%00', headers: apiKey(lister.token) }),
      ),
      ...Array.from({ length: 10 }, () => t.app.inject({ method: 'GET', url: '/api/secrets/A%00B' })),
    ];
    const benign = Array.from({ length: 60 }, () =>
      t.app.inject({ method: 'GET', url: '/api/secrets/ISO_TARGET', headers: t.auth('bystander') }),
    );
    const [h, b] = await Promise.all([Promise.all(hostile), Promise.all(benign)]);
    expect(b.map((r) => r.statusCode)).toEqual(b.map(() => 200));
    expect(h.slice(0, 20).map((r) => r.statusCode)).toEqual(h.slice(0, 20).map(() => 403));
    expect(h.slice(20).map((r) => r.statusCode)).toEqual(h.slice(20).map(() => 401));
    // Each refusal left exactly one row, its key recorded escaped.
    const denied = await rowsFor('\\u0000');
    expect(denied).toHaveLength(20);
    expect(denied.every((r) => r.actor === `access_key:${lister.id}` && r.outcome === 'denied')).toBe(true);
    const unauthenticated = await rowsFor('A\\u0000B');
    expect(unauthenticated).toHaveLength(10);
    expect(unauthenticated.every((r) => r.action === 'auth.failed')).toBe(true);
  });

  it('records surrogates, controls and over-long text escaped and bounded', async () => {
    const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
    for (const path of ['A%0A%1B%7FB', '%5C%09']) {
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/secrets/${path}`,
        headers: apiKey(lister.token),
      });
      expect(res.statusCode).toBe(403);
    }
    const keys = (
      await t.db.query<{ key: string }>('SELECT key FROM audit_log WHERE actor = $1 ORDER BY id', [
        `access_key:${lister.id}`,
      ])
    ).map((r) => r.key);
    expect(keys).toEqual(['A\\u000a\\u001b\\u007fB', '\\\\\\u0009']);
    expect(recordedText('\ud800x')).toBe('\\ud800x');
    expect(recordedText('a\\b')).toBe('a\\\\b');
    expect(recordedText('😀')).toBe('😀');
    const cut = recordedText('\u0000'.repeat(1000));
    expect(cut.length).toBeLessThanOrEqual(256);
    expect(cut.endsWith('...[1000 chars]')).toBe(true);
  });

  it('a row the database refuses fails only its own request, not the batch it shared', async () => {
    const writer = t.app.auditWriter;
    const row = (key: string, version: number | null = null) => ({
      actor: 'admin:isolation',
      action: 'secret.read' as const,
      key,
      version,
      outcome: 'success' as const,
    });
    // Queued in one tick, so they share a batch; 2^40 does not fit the int column (22003).
    const good = Array.from({ length: 9 }, (_, i) => writer.record([row(`ISO_GOOD_${i}`)]));
    const bad = writer.record([row('ISO_BAD', 2 ** 40)]);
    const more = Array.from({ length: 9 }, (_, i) => writer.record([row(`ISO_MORE_${i}`)]));
    const settled = await Promise.allSettled([...good, bad, ...more]);
    expect(settled.map((s) => s.status)).toEqual([
      ...good.map(() => 'fulfilled'),
      'rejected',
      ...more.map(() => 'fulfilled'),
    ]);
    expect(((settled[9] as PromiseRejectedResult).reason as { statusCode: number }).statusCode).toBe(503);
    const written = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE actor = 'admin:isolation'`,
    );
    expect(written[0]!.n).toBe(18);
  });
});

describe('finding 2: text that cannot be stored is a 400 at the edge', () => {
  it.each([
    'key',
    'actor',
    'action',
  ])('GET /api/audit with a NUL in %s answers 400 naming the field', async (field) => {
    for (const bad of ['%00', 'A%00B']) {
      const res = await t.app.inject({ method: 'GET', url: `/api/audit?${field}=${bad}`, headers: t.auth() });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toContain(field);
    }
  });

  it('finds a refusal by the escaped key its row recorded', async () => {
    const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/N%00UL',
      headers: apiKey(lister.token),
    });
    expect(res.statusCode).toBe(403);
    const found = await t.app.inject({
      method: 'GET',
      url: `/api/audit?key=${encodeURIComponent('N\\u0000UL')}`,
      headers: t.auth(),
    });
    expect(found.statusCode).toBe(200);
    expect(found.json().entries).toHaveLength(1);
  });

  it('refuses an admin token whose subject cannot be stored (401), leaving its row', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/secrets',
      headers: { authorization: `Bearer ${t.token('ad\u0000min')}` },
    });
    expect(res.statusCode).toBe(401);
    const rows = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.failed' AND request_id = $1`,
      [res.headers['x-request-id']],
    );
    expect(rows[0]!.n).toBe(1);
  });
});

describe('a refusal by the route schema or the body parser leaves exactly one row', () => {
  const rowsOf = (requestId: unknown) =>
    t.db.query<{ key: string | null; action: string; outcome: string; actor: string }>(
      'SELECT key, action, outcome, actor FROM audit_log WHERE request_id = $1',
      [requestId],
    );

  it.each([
    ['GET', '/api/secrets/%00', undefined, '\\u0000', 'secret.read'],
    ['GET', `/api/secrets/${'K'.repeat(200)}`, undefined, 'K'.repeat(200), 'secret.read'],
    [
      'GET',
      `/api/secrets/${'%00'.repeat(80)}`,
      undefined,
      `${'\\u0000'.repeat(40)}...[80 chars]`,
      'secret.read',
    ],
    ['PUT', '/api/secrets/A%00B', { value: 'x' }, 'A\\u0000B', 'secret.update'],
    ['POST', '/api/secrets', { key: 'N\u0000UL', value: 'x' }, 'N\\u0000UL', 'secret.create'],
    ['POST', '/api/secrets', { value: 'no key' }, null, 'secret.create'],
  ] as const)('admin %s %s: a 400 and one row with the key escaped and bounded', async (method, url, payload, key, action) => {
    const res = await t.app.inject({
      method,
      url,
      headers: t.auth('schema-refused'),
      ...(payload ? { payload } : {}),
    });
    expect(res.statusCode).toBe(400);
    const rows = await rowsOf(res.headers['x-request-id']);
    expect(rows).toEqual([{ key, action, outcome: 'invalid', actor: 'admin:schema-refused' }]);
  });

  it('a body that is not JSON leaves one row, an access key refused by its scope still one', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: { ...t.auth('schema-refused'), 'content-type': 'application/json' },
      payload: '{"key": ',
    });
    expect(res.statusCode).toBe(400);
    expect(await rowsOf(res.headers['x-request-id'])).toHaveLength(1);
    const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
    const denied = await t.app.inject({
      method: 'PUT',
      url: '/api/secrets/%00',
      headers: apiKey(lister.token),
      payload: { value: 'x' },
    });
    expect(denied.statusCode).toBe(403);
    expect(await rowsOf(denied.headers['x-request-id'])).toHaveLength(1);
  });
});
