import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

// lastUsedAt/lastUsedBy without a write per read (issue 10): the stored stamp in `secrets` is
// rewritten at most once a minute, and the list takes the newest success read at or after it
// from the audit trail. What a caller sees must still be the last use, to the second.
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
const c = api(t);

async function create(key: string) {
  expect((await c.create({ key, value: secretValue() })).statusCode).toBe(201);
}

// Only the credentials given (an access key must not travel with the admin's token).
const read = (key: string, headers: Record<string, string>) =>
  t.app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers });

async function listed(key: string) {
  const r = await c.list({ prefix: key });
  expect(r.statusCode).toBe(200);
  const s = (
    r.json().secrets as Array<{ key: string; lastUsedAt: string | null; lastUsedBy: string | null }>
  ).find((x) => x.key === key);
  expect(s).toBeDefined();
  return s!;
}

const stored = async (key: string) =>
  (
    await t.db.query<{ by: string | null; age_s: number | null }>(
      `SELECT last_used_by AS by, extract(epoch FROM now() - last_used_at)::float8 AS age_s FROM secrets WHERE key = $1`,
      [key],
    )
  )[0]!;

/** The newest success read row of a key, as the list should report it. */
const newestRead = async (key: string) =>
  (
    await t.db.query<{ at: Date; actor: string }>(
      `SELECT at, actor FROM audit_log WHERE key = $1 AND action = 'secret.read' AND outcome = 'success'
       ORDER BY id DESC LIMIT 1`,
      [key],
    )
  )[0]!;

describe('lastUsedAt / lastUsedBy', () => {
  it('shows the latest reader at the time of its read, while the stored stamp is not rewritten', async () => {
    await create('LU_TWO');
    expect(await listed('LU_TWO')).toMatchObject({ lastUsedAt: null, lastUsedBy: null });
    expect((await read('LU_TWO', t.auth('first'))).statusCode).toBe(200);
    // The first read of a never-read secret writes the stamp.
    expect((await stored('LU_TWO')).by).toBe('first');
    expect((await listed('LU_TWO')).lastUsedBy).toBe('first');

    expect((await read('LU_TWO', t.auth('second'))).statusCode).toBe(200);
    const shown = await listed('LU_TWO');
    expect(shown.lastUsedBy).toBe('second');
    // Exactly the time of that read's audit row, not the stamp's.
    expect(shown.lastUsedAt).toBe((await newestRead('LU_TWO')).at.toISOString());
    // No write per read: the stamp is still the first reader's (it is under a minute old).
    expect((await stored('LU_TWO')).by).toBe('first');
  });

  it('rewrites a stamp older than a minute', async () => {
    await create('LU_OLD');
    expect((await read('LU_OLD', t.auth('early'))).statusCode).toBe(200);
    await t.db.query(`UPDATE secrets SET last_used_at = now() - interval '2 minutes' WHERE key = 'LU_OLD'`);
    expect((await read('LU_OLD', t.auth('late'))).statusCode).toBe(200);
    const s = await stored('LU_OLD');
    expect(s.by).toBe('late');
    expect(s.age_s!).toBeLessThan(30);
    expect((await listed('LU_OLD')).lastUsedBy).toBe('late');
  });

  it('counts only successful reads: a refused read leaves the last use as it was', async () => {
    await create('LU_GONE');
    expect((await read('LU_GONE', t.auth('reader'))).statusCode).toBe(200);
    const before = await listed('LU_GONE');
    await c.remove('LU_GONE');
    expect((await read('LU_GONE', t.auth('intruder'))).statusCode).toBe(404);
    expect(await listed('LU_GONE')).toMatchObject({
      lastUsedBy: 'reader',
      lastUsedAt: before.lastUsedAt,
    });
  });

  it('names an access key reader by its name', async () => {
    await create('LU_KEYED');
    const k = await c.req('POST', '/api/access-keys', {
      name: 'deployer',
      scopes: ['secrets:read'],
      keys: ['LU_KEYED'],
    });
    expect(k.statusCode).toBe(201);
    expect((await read('LU_KEYED', t.auth('admin-first'))).statusCode).toBe(200);
    const r = await read('LU_KEYED', { 'x-api-key': k.json().token });
    expect(r.statusCode).toBe(200);
    expect((await listed('LU_KEYED')).lastUsedBy).toBe('access_key:deployer');
  });

  it('a purged and re-created secret does not inherit the old one’s reads', async () => {
    await create('LU_REBORN');
    expect((await read('LU_REBORN', t.auth('old-reader'))).statusCode).toBe(200);
    await c.remove('LU_REBORN');
    const purge = await c.req('DELETE', '/api/secrets/LU_REBORN?purge=true');
    expect(purge.statusCode).toBe(200);
    await create('LU_REBORN');
    expect(await listed('LU_REBORN')).toMatchObject({ lastUsedAt: null, lastUsedBy: null });
    expect((await read('LU_REBORN', t.auth('new-reader'))).statusCode).toBe(200);
    expect((await listed('LU_REBORN')).lastUsedBy).toBe('new-reader');
  });

  it('falls back to the stored stamp when the audit rows after it are gone (retention)', async () => {
    await create('LU_ARCHIVED');
    expect((await read('LU_ARCHIVED', t.auth('long-ago'))).statusCode).toBe(200);
    // What dropping an archived partition leaves: the stamp, no rows of that key.
    await t.db.query(`DELETE FROM audit_log WHERE key = 'LU_ARCHIVED'`);
    expect((await listed('LU_ARCHIVED')).lastUsedBy).toBe('long-ago');
  });

  it('keeps the list a keyset over secrets: pages do not repeat or skip', async () => {
    for (const k of ['LU_PAGE_A', 'LU_PAGE_B', 'LU_PAGE_C']) {
      await create(k);
      expect((await read(k, t.auth('pager'))).statusCode).toBe(200);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { statusCode: number; json: () => unknown } = await c.list({
        prefix: 'LU_PAGE_',
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      expect(r.statusCode).toBe(200);
      const body = r.json() as {
        secrets: Array<{ key: string; lastUsedBy: string | null }>;
        nextCursor: string | null;
      };
      for (const s of body.secrets) {
        expect(s.lastUsedBy).toBe('pager');
        seen.push(s.key);
      }
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['LU_PAGE_C', 'LU_PAGE_B', 'LU_PAGE_A']);
  });
});
