import { describe, expect, it } from 'vitest';
import { createAuditRepository } from '../../src/audit/repository.js';
import { AuditSealer } from '../../src/audit/sealer.js';
import { backend, createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import {
  clientOfSchema,
  whileOpenInAnotherDatabase,
  whileWritingInAnotherSchema,
} from '../helpers/other-transactions.js';
import { secretValue } from '../helpers/secrets.js';

// No background sealing: the tests decide when the chain is sealed.
const t = useTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' }, resetEachTest: true });

async function makeRows(n: number, app: TestApp = t) {
  const exists = await app.db.query(`SELECT 1 FROM secrets WHERE key = 'AUD_CHAIN'`);
  if (exists.length === 0) {
    const r = await app.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: app.auth(),
      payload: { key: 'AUD_CHAIN', value: secretValue() },
    });
    expect(r.statusCode).toBe(201);
  }
  for (let i = 0; i < n; i++)
    await app.app.inject({ method: 'GET', url: '/api/secrets/AUD_CHAIN', headers: app.auth() });
}

const verify = async (app: TestApp = t) => {
  const r = await app.app.inject({ method: 'GET', url: '/api/audit/verify', headers: app.auth() });
  expect(r.statusCode).toBe(200);
  return r.json();
};

const rowIds = async () =>
  (await t.db.query<{ id: string }>('SELECT id::text AS id FROM audit_log ORDER BY id')).map((r) => r.id);

/** Three seals: 3 rows, then 2, then 2 (each verify seals what is finished). */
async function threeSeals() {
  await makeRows(2);
  await verify();
  await makeRows(2);
  await verify();
  await makeRows(2);
  expect(await verify()).toMatchObject({ intact: true, checked: 7, seals: 3 });
  return rowIds();
}

describe('sealing without rewriting rows', () => {
  it('is intact after sealing, stays intact as rows are added, and never updates a row', async () => {
    await makeRows(5);
    expect(await verify()).toEqual({
      intact: true,
      checked: 6,
      seals: 1,
      firstBrokenId: null,
      firstBrokenSeal: null,
      reason: null,
      anchorSeal: '0',
    });
    const before = await t.db.query<{ row: string }>('SELECT a::text AS row FROM audit_log a ORDER BY id');
    await makeRows(2);
    // verify itself is not audited: 6 rows + 2 reads.
    expect(await verify()).toMatchObject({ intact: true, checked: 8, seals: 2 });
    const after = await t.db.query<{ row: string }>('SELECT a::text AS row FROM audit_log a ORDER BY id');
    expect(after.slice(0, before.length)).toEqual(before);
    const listed = (await t.app.inject({ method: 'GET', url: '/api/audit', headers: t.auth() })).json();
    expect(listed.entries).toHaveLength(8);
    for (const e of listed.entries)
      expect(e).toMatchObject({ sealed: true, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('seals a row that commits late (a smaller id than sealed rows) in a later seal', async () => {
    await makeRows(2);
    await verify();
    await t.db.query(
      `INSERT INTO audit_log (id, actor, action, outcome) VALUES (0, 'admin:slow', 'secret.read', 'success')`,
    );
    expect(await verify()).toMatchObject({ intact: true, checked: 4, seals: 2 });
  });

  it('splits a range that spans days into one seal per UTC day', async () => {
    await t.db.query(
      `INSERT INTO audit_log (actor, action, outcome, at) VALUES
         ('admin:a', 'secret.read', 'success', now() - interval '3 days'),
         ('admin:b', 'secret.read', 'success', now()),
         ('admin:c', 'secret.read', 'success', now() - interval '1 day')`,
    );
    expect(await verify()).toMatchObject({ intact: true, checked: 3, seals: 3 });
    const seals = await t.db.query<{ lo: string | null; hi: string | null; n: number }>(
      'SELECT at_lo::text AS lo, at_hi::text AS hi, row_count AS n FROM audit_seals ORDER BY seq',
    );
    expect(seals.map((s) => s.n)).toEqual([1, 1, 1]);
    expect(seals[0]?.lo).toBeNull();
    expect(seals[2]?.hi).toBeNull();
    expect(seals[1]?.lo).toBe(seals[0]?.hi);
  });
});

/** Whether each listed row is sealed, oldest first, with its actor. */
const sealedFlags = async () =>
  (
    (await t.app.inject({ method: 'GET', url: '/api/audit', headers: t.auth() })).json() as {
      entries: { actor: string; sealed: boolean }[];
    }
  ).entries
    .reverse()
    .map((e) => `${e.actor}:${e.sealed}`);

// The horizon below which rows are final (src/db/xid-horizon.ts) counts only the transactions
// of the service's own schema: PostgreSQL only (PGlite has one session).
if (backend === 'postgres') {
  describe('only a transaction of this schema holds sealing back', () => {
    it('a transaction open in another database does not: every row committed before verify is sealed', async () => {
      await whileOpenInAnotherDatabase(async () => {
        await makeRows(2);
        // Sealed while that transaction is still open (before: nothing after its xid was).
        expect(await verify()).toMatchObject({ intact: true, checked: 3, seals: 1 });
        expect(await sealedFlags()).toEqual(Array(3).fill('admin:test-admin:true'));
      });
    });

    it('a write transaction open in another schema of the same database does not', async () => {
      await whileWritingInAnotherSchema(async () => {
        await makeRows(2);
        expect(await verify()).toMatchObject({ intact: true, checked: 3, seals: 1 });
        expect(await sealedFlags()).toEqual(Array(3).fill('admin:test-admin:true'));
      });
    });

    it('a transaction of this schema still open does: rows after its xid stay unsealed until it ends', async () => {
      await makeRows(1);
      expect(await verify()).toMatchObject({ intact: true, checked: 2 });
      const older = await clientOfSchema(t.schema!);
      try {
        // A writer of this schema whose audit row is not committed yet.
        await older.query('BEGIN');
        await older.query(
          `INSERT INTO audit_log (actor, action, outcome) VALUES ('admin:slow', 'secret.read', 'success')`,
        );
        await makeRows(2);
        // A sealing round while it is open seals none of the rows written after it began.
        await new AuditSealer({ db: t.db, repo: createAuditRepository() }).sealPending();
        const seen = 'admin:test-admin';
        expect(await sealedFlags()).toEqual([
          `${seen}:true`,
          `${seen}:true`,
          `${seen}:false`,
          `${seen}:false`,
        ]);
        await older.query('COMMIT');
        // Once it has ended, its row and the later ones are sealed.
        expect(await verify()).toMatchObject({ intact: true, checked: 5 });
        expect(await sealedFlags()).toEqual([
          `${seen}:true`,
          `${seen}:true`,
          'admin:slow:true',
          `${seen}:true`,
          `${seen}:true`,
        ]);
      } finally {
        await older.end();
      }
    });
  });
}

describe('tampering is detected and named', () => {
  it('an edited row', async () => {
    const ids = await threeSeals();
    await t.db.query(`UPDATE audit_log SET outcome = 'not_found' WHERE id = $1::bigint`, [ids[4]]);
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenId: ids[4],
      firstBrokenSeal: '2',
      reason: expect.stringContaining('edited'),
      checked: 3,
    });
  });

  it('a deleted row: names the row after it', async () => {
    const ids = await threeSeals();
    await t.db.query('DELETE FROM audit_log WHERE id = $1::bigint', [ids[1]]);
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenId: ids[2],
      firstBrokenSeal: '1',
      reason: expect.stringContaining('removed'),
    });
  });

  it("a seal's last row deleted: names that row", async () => {
    const ids = await threeSeals();
    await t.db.query('DELETE FROM audit_log WHERE id = $1::bigint', [ids[4]]);
    expect(await verify()).toMatchObject({ intact: false, firstBrokenId: ids[4], firstBrokenSeal: '2' });
  });

  it('a forged row inserted into a sealed range', async () => {
    const ids = await threeSeals();
    const sealed = await t.db.query<{ xid: string }>(
      'SELECT xid::text AS xid FROM audit_log WHERE id = $1::bigint',
      [ids[3]],
    );
    const forgedId = String(BigInt(ids[6] as string) + 1000n);
    await t.db.query(
      `INSERT INTO audit_log (id, actor, action, outcome, xid) VALUES ($1::bigint, 'admin:mallory', 'secret.read', 'success', $2::xid8)`,
      [forgedId, sealed[0]?.xid],
    );
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenId: forgedId,
      firstBrokenSeal: '2',
      reason: expect.stringContaining('inserted'),
    });
  });

  it('rows reordered by swapping their contents: names the first of the two', async () => {
    const ids = await threeSeals();
    await t.db.query(
      `UPDATE audit_log a SET actor = b.actor, at = b.at, request_id = b.request_id, action = b.action
       FROM audit_log b WHERE (a.id, b.id) IN (($1::bigint, $2::bigint), ($2::bigint, $1::bigint))`,
      [ids[1], ids[5]],
    );
    await t.db.query(`UPDATE audit_log SET actor = 'admin:mallory' WHERE id = $1::bigint`, [ids[1]]);
    expect(await verify()).toMatchObject({ intact: false, firstBrokenId: ids[1], firstBrokenSeal: '1' });
  });

  it('a row moved to another range by editing its xid', async () => {
    const ids = await threeSeals();
    await t.db.query(
      `UPDATE audit_log SET xid = (SELECT xid FROM audit_log WHERE id = $2::bigint) WHERE id = $1::bigint`,
      [ids[0], ids[6]],
    );
    expect(await verify()).toMatchObject({ intact: false, firstBrokenId: ids[1], firstBrokenSeal: '1' });
  });

  it('an edited seal', async () => {
    await threeSeals();
    await t.db.query('UPDATE audit_seals SET row_count = row_count + 1 WHERE seq = 2');
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenSeal: '2',
      reason: expect.stringContaining('seal 2'),
    });
    await t.db.query('UPDATE audit_seals SET row_count = row_count - 1 WHERE seq = 2');
    expect(await verify()).toMatchObject({ intact: true });
    await t.db.query(`UPDATE audit_seals SET hash = decode(repeat('ab', 32), 'hex') WHERE seq = 1`);
    expect(await verify()).toMatchObject({ intact: false, firstBrokenSeal: '1' });
  });

  it('a deleted seal', async () => {
    await threeSeals();
    await t.db.query('DELETE FROM audit_seals WHERE seq = 2');
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenSeal: '2',
      reason: expect.stringContaining('missing'),
    });
  });

  it('seals reordered', async () => {
    await threeSeals();
    await t.db.query('UPDATE audit_seals SET seq = -seq WHERE seq IN (2, 3)');
    await t.db.query('UPDATE audit_seals SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE seq IN (-2, -3)');
    expect(await verify()).toMatchObject({ intact: false, firstBrokenSeal: '2' });
  });

  it('the chain cut at its end (last seal and its rows deleted)', async () => {
    const ids = await threeSeals();
    await t.db.query('DELETE FROM audit_seals WHERE seq = 3');
    await t.db.query('DELETE FROM audit_log WHERE id >= $1::bigint', [ids[5]]);
    expect(await verify()).toMatchObject({
      intact: false,
      firstBrokenId: null,
      firstBrokenSeal: '3',
      reason: expect.stringContaining('removed from its end'),
    });
  });
});

describe('several instances', () => {
  it('a storm of writers, slow transactions and sealers leaves one intact chain; any edit is then named', async () => {
    await makeRows(1);
    // On PostgreSQL the instances share the schema; on PGlite each has its own memory, so
    // there the test exercises concurrent sealing within each instance.
    const others: TestApp[] = [];
    for (let i = 0; i < 2; i++) {
      others.push(
        await createTestApp({
          env: { ...t.env, AUDIT_SEAL_INTERVAL_MS: '5' },
          ...(t.schema ? { schema: t.schema } : {}),
        }),
      );
    }
    try {
      const apps = [t, ...others];
      if (!t.schema) for (const o of others) await makeRows(1, o);
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        const target = apps[i % apps.length] as TestApp;
        calls.push(
          target.app
            .inject({ method: 'GET', url: '/api/secrets/AUD_CHAIN', headers: target.auth() })
            .then((r) => expect(r.statusCode).toBe(200)),
        );
        if (i % 15 === 0) {
          calls.push(verify(target).then((v) => expect(v.intact).toBe(true)));
          // A slow writer: its row commits long after rows with larger ids were sealed.
          calls.push(
            target.db.transaction(async (tx) => {
              await tx.query(
                `INSERT INTO audit_log (actor, action, outcome) VALUES ('admin:slow', 'secret.read', 'success')`,
              );
              await new Promise((r) => setTimeout(r, 30));
            }),
          );
        }
      }
      await Promise.all(calls);
      for (const x of t.schema ? [t] : apps) {
        const v = await verify(x);
        const n = await x.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
        expect(v, JSON.stringify(v)).toMatchObject({ intact: true, checked: n[0]?.n });
        const s = await x.db.query<{ n: number; max: number }>(
          'SELECT count(*)::int AS n, max(seq)::int AS max FROM audit_seals',
        );
        expect(s[0]?.n).toBe(s[0]?.max);
      }
      const ids = await rowIds();
      const victim = ids[Math.floor(ids.length / 2)];
      await t.db.query(`UPDATE audit_log SET key = 'OTHER' WHERE id = $1::bigint`, [victim]);
      expect(await verify()).toMatchObject({ intact: false, firstBrokenId: victim });
    } finally {
      for (const o of others) await o.close();
    }
  });
});
