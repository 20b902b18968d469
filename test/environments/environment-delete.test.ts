import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Transaction, TransactionOptions } from '../../src/db/database.js';
import { ERASE_BATCH } from '../../src/secrets/changes.js';
import { backend, useTestApp } from '../helpers/app.js';
import { clientOfSchema } from '../helpers/other-transactions.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Deleting an environment: what it costs with many soft-deleted secrets, and races with
 * a secret in it. Deleting it while a secret in it comes back (restore, PUT isActive:true, a
 * create reviving it) or is created: either the secret's change wins and the environment
 * is not deleted (409, the secret live in it), or the deletion wins and the secret is gone.
 * Never a live secret left in an environment that no longer exists (secrets name their
 * environment without a foreign key), which a new environment of the same name would
 * inherit.
 */
const t = useTestApp({ resetEachTest: true });

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const send = (method: Method, url: string, payload?: object) =>
  t.app.inject({ method, url, headers: t.auth(), ...(payload ? { payload } : {}) });
const secrets = (env: string) => `/api/environments/${env}/secrets`;

/** An environment `doomed` holding the soft-deleted secret LATE. */
async function softDeletedSecret() {
  expect((await send('POST', '/api/environments', { name: 'doomed' })).statusCode).toBe(201);
  expect((await send('POST', secrets('doomed'), { key: 'LATE', value: secretValue() })).statusCode).toBe(201);
  expect((await send('DELETE', `${secrets('doomed')}/LATE`)).statusCode).toBe(200);
}

/** Secrets whose environment does not exist: none, whatever happened. */
const orphans = () =>
  t.db.query<{ key: string; environment: string; is_active: boolean }>(
    `SELECT key, environment, is_active FROM secrets s
     WHERE NOT EXISTS (SELECT 1 FROM environments e WHERE e.name = s.environment)`,
  );

/** The secret's change won: it is live in the environment, which still exists. */
async function secretWon(deleted: { statusCode: number; json(): { message: string } }, key: string) {
  expect(deleted.statusCode).toBe(409);
  expect(deleted.json().message).toBe('Environment doomed still holds 1 active secret: it cannot be deleted');
  expect((await send('GET', '/api/environments/doomed')).statusCode).toBe(200);
  const got = await send('GET', `${secrets('doomed')}/${key}`);
  expect(got.statusCode).toBe(200);
  expect(await orphans()).toEqual([]);
}

const comeBack: Record<string, () => ReturnType<typeof send>> = {
  restore: () => send('POST', `${secrets('doomed')}/LATE/restore`),
  'PUT isActive:true': () => send('PUT', `${secrets('doomed')}/LATE`, { isActive: true }),
  'POST reviving it': () => send('POST', secrets('doomed'), { key: 'LATE', value: secretValue() }),
};

describe('a secret coming back while its environment is deleted', () => {
  it.each(
    Object.keys(comeBack),
  )('%s first: the deletion is refused (409), the secret stays live', async (how) => {
    await softDeletedSecret();
    expect((await comeBack[how]!()).statusCode).toBeLessThan(300);
    await secretWon(await send('DELETE', '/api/environments/doomed'), 'LATE');
  });

  it.each(Object.keys(comeBack))('the deletion first: %s answers 404, nothing is left', async (how) => {
    await softDeletedSecret();
    const deleted = await send('DELETE', '/api/environments/doomed');
    expect(deleted.json()).toMatchObject({ erased: 1 });
    expect((await comeBack[how]!()).statusCode).toBe(404);
    expect(await t.db.query(`SELECT key FROM secrets WHERE environment = 'doomed'`)).toEqual([]);
  });

  it.each(
    Object.keys(comeBack),
  )('sent together with the deletion (%s): one of the two wins, no orphan', async (how) => {
    await softDeletedSecret();
    const [back, deleted] = await Promise.all([comeBack[how]!(), send('DELETE', '/api/environments/doomed')]);
    if (deleted.statusCode === 200) {
      expect(back.statusCode).toBe(404);
      expect(await t.db.query(`SELECT key FROM secrets WHERE environment = 'doomed'`)).toEqual([]);
    } else {
      expect(back.statusCode).toBeLessThan(300);
      await secretWon(deleted, 'LATE');
    }
    expect(await orphans()).toEqual([]);
  });
});

/** The statements of each transaction the app runs while `fn` does (a wrapper of the app's own database). */
async function statementsOf(fn: () => Promise<void>): Promise<string[][]> {
  const db = t.db as { transaction: typeof t.db.transaction };
  const own = db.transaction;
  const seen: string[][] = [];
  db.transaction = (<T>(work: (tx: Transaction) => Promise<T>, opts?: TransactionOptions) =>
    own.call(
      t.db,
      (tx) => {
        const sql: string[] = [];
        seen.push(sql);
        const counted = {
          query: (text: string, ...rest: unknown[]) => {
            sql.push(text);
            return (tx.query as (...a: unknown[]) => Promise<unknown>)(text, ...rest);
          },
          exec: (text: string) => {
            sql.push(text);
            return tx.exec(text);
          },
        } as Transaction;
        return work(counted);
      },
      opts,
    )) as typeof own;
  try {
    await fn();
  } finally {
    db.transaction = own;
  }
  return seen;
}

describe('deleting an environment with many soft-deleted secrets', () => {
  it(`erases them ${ERASE_BATCH} to a statement, each still a purge with its audit row and event`, async () => {
    const n = ERASE_BATCH + 1;
    expect((await send('POST', '/api/environments', { name: 'big' })).statusCode).toBe(201);
    // Soft-deleted secrets written straight to the table (the API would take a request each),
    // each with an earlier event carrying its ETag and an expiry notice.
    await t.db.query(
      `INSERT INTO secrets (id, key, current_version, environment, is_active)
       SELECT gen_random_uuid(), 'K_' || lpad(i::text, 4, '0'), 1 + i % 3, 'big', false FROM generate_series(1, $1::int) i`,
      [n],
    );
    await t.db.query(
      `INSERT INTO change_events (type, key, version, etag, actor, environment)
       SELECT 'secret.deleted', key, current_version, '"' || id || '.2"', 'admin:test', 'big' FROM secrets WHERE environment = 'big'`,
    );
    await t.db.query(
      `INSERT INTO expiry_notices (secret_id, expires_at) SELECT id, now() FROM secrets WHERE environment = 'big'`,
    );
    // A secret of another environment keeps its ETags and notice.
    const other = await send('POST', '/api/secrets', { key: 'K_0001', value: secretValue() });
    expect(other.statusCode).toBe(201);
    const [{ seq }] = (await t.db.query<{ seq: string }>(
      'SELECT coalesce(max(seq), 0)::text AS seq FROM change_events',
    )) as [{ seq: string }];

    let deleted: Awaited<ReturnType<typeof send>> | undefined;
    const transactions = await statementsOf(async () => {
      deleted = await send('DELETE', '/api/environments/big');
    });
    expect(deleted!.statusCode).toBe(200);
    expect(deleted!.json()).toMatchObject({ erased: n });
    // The deletion's transaction: a handful of statements, not one per erased secret.
    const own = transactions.filter((sql) => sql.some((q) => q.includes('DELETE FROM environments')));
    expect(own).toHaveLength(1);
    expect(own[0]!.length).toBeLessThan(16);
    expect(own[0]!.filter((q) => q.includes('DELETE FROM secrets'))).toHaveLength(Math.ceil(n / ERASE_BATCH));

    // Per secret, as a single purge: one secret.purge row and one secret.purged event
    // (naming the environment, no ETag, joined to its row), in key order.
    const events = await t.db.query<{
      key: string;
      version: number;
      etag: string | null;
      audit_key: string;
      av: number;
    }>(
      `SELECT e.key, e.version, e.etag, a.key AS audit_key, a.version AS av FROM change_events e
       JOIN audit_log a ON a.id = e.audit_id
       WHERE e.seq > $1::bigint AND e.type = 'secret.purged' AND e.environment = 'big' AND a.action = 'secret.purge'
         AND a.environment = 'big' AND a.outcome = 'success'
       ORDER BY e.seq`,
      [seq],
    );
    const keys = Array.from({ length: n }, (_, i) => `K_${String(i + 1).padStart(4, '0')}`);
    expect(events.map((e) => e.key)).toEqual(keys);
    expect(events.every((e) => e.etag === null && e.audit_key === e.key && e.av === e.version)).toBe(true);
    expect(events.map((e) => e.version)).toEqual(keys.map((_, i) => 1 + ((i + 1) % 3)));
    // Their ETags are gone from earlier events, their notices too; the other secret keeps its own.
    const [left] = await t.db.query<{ etags: number; notices: number; secrets: number }>(
      `SELECT (SELECT count(*)::int FROM change_events WHERE environment = 'big' AND etag IS NOT NULL) AS etags,
              (SELECT count(*)::int FROM expiry_notices) AS notices,
              (SELECT count(*)::int FROM secrets) AS secrets`,
    );
    expect(left).toEqual({ etags: 0, notices: 0, secrets: 1 });
    const [kept] = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM change_events WHERE environment = 'default' AND etag IS NOT NULL`,
    );
    expect(kept!.n).toBe(1);
  });
});

if (backend === 'postgres') {
  /**
   * A fixed interleaving on PostgreSQL: the test holds a lock (its own transaction) that the
   * secret's change waits for, then sends the deletion, which queues behind the change;
   * once both wait, the test lets go. The change runs first and commits while the
   * deletion is in the middle of its transaction (the environment's row locked, its
   * active secrets counted: none), then the deletion goes on.
   */
  describe('on PostgreSQL, the secret comes back in the middle of the deletion', () => {
    /** Backends waiting, directly or behind one another, for the holder's locks. */
    async function waitingBehind(watch: pg.Client, holderPid: number): Promise<number> {
      const { rows } = await watch.query<{ n: number }>(
        `WITH RECURSIVE w(pid) AS (
           SELECT $1::int
           UNION
           SELECT a.pid FROM pg_stat_activity a, w WHERE w.pid = ANY(pg_blocking_pids(a.pid))
         ) SELECT count(*)::int - 1 AS n FROM w`,
        [holderPid],
      );
      return rows[0]!.n;
    }

    /** Resolves once `n` backends wait behind the holder; fails if `pending` settles first. */
    async function untilWaiting(watch: pg.Client, holderPid: number, n: number, pending: Promise<unknown>[]) {
      let settled = false;
      const done = () => {
        settled = true;
      };
      for (const p of pending) p.then(done, done);
      // Each round is a query to the server: the loop advances on its answers, not on a timer.
      while ((await waitingBehind(watch, holderPid)) < n) {
        if (settled) throw new Error('a request finished instead of waiting for the held lock');
      }
    }

    async function interleave(
      hold: (holder: pg.Client) => Promise<void>,
      change: () => ReturnType<typeof send>,
    ): Promise<{ back: Awaited<ReturnType<typeof send>>; deleted: Awaited<ReturnType<typeof send>> }> {
      const holder = await clientOfSchema(t.schema!);
      const watch = await clientOfSchema(t.schema!);
      try {
        const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        await holder.query('BEGIN');
        await hold(holder);
        const back = change();
        await untilWaiting(watch, pid, 1, [back]);
        const deleted = send('DELETE', '/api/environments/doomed');
        await untilWaiting(watch, pid, 2, [back, deleted]);
        await holder.query('ROLLBACK');
        return { back: await back, deleted: await deleted };
      } finally {
        await holder.end();
        await watch.end();
      }
    }

    /** The test locks LATE's row: the secret's change waits for it, then the deletion for the change. */
    const lockRow = async (holder: pg.Client) => {
      await holder.query(`SELECT 1 FROM secrets WHERE environment = 'doomed' AND key = 'LATE' FOR UPDATE`);
    };

    it.each(
      Object.keys(comeBack),
    )('%s commits first: the deletion is refused, the secret stays live', async (how) => {
      await softDeletedSecret();
      const { back, deleted } = await interleave(lockRow, comeBack[how]!);
      expect(back.statusCode).toBeLessThan(300);
      await secretWon(deleted, 'LATE');
    });

    it('a batch import reviving and creating meanwhile: the deletion waits for it and is refused, no deadlock', async () => {
      expect((await send('POST', '/api/environments', { name: 'doomed' })).statusCode).toBe(201);
      for (const key of ['A_OLD', 'Z_OLD']) {
        expect((await send('POST', secrets('doomed'), { key, value: secretValue() })).statusCode).toBe(201);
        expect((await send('DELETE', `${secrets('doomed')}/${key}`)).statusCode).toBe(200);
      }
      // The import locks its rows in key order: A_OLD, then waits for Z_OLD (held here).
      const lockLast = async (holder: pg.Client) => {
        await holder.query(`SELECT 1 FROM secrets WHERE environment = 'doomed' AND key = 'Z_OLD' FOR UPDATE`);
      };
      const { back, deleted } = await interleave(lockLast, () =>
        send('POST', `${secrets('doomed')}/batch`, {
          secrets: ['A_OLD', 'B_NEW', 'Z_OLD'].map((key) => ({ key, value: secretValue() })),
        }),
      );
      expect(back.statusCode).toBe(200);
      expect(back.json().results.map((r: { status: string }) => r.status)).toEqual([
        'created',
        'created',
        'created',
      ]);
      expect(deleted.statusCode).toBe(409);
      expect(deleted.json().message).toBe(
        'Environment doomed still holds 3 active secrets: it cannot be deleted',
      );
      expect(await orphans()).toEqual([]);
    });

    it('a new secret created meanwhile: the deletion waits for it and is refused', async () => {
      expect((await send('POST', '/api/environments', { name: 'doomed' })).statusCode).toBe(201);
      // The test inserts the same key without committing: the create waits in its insert,
      // holding the environment's row (the deletion's lock waits for it).
      const sameKey = async (holder: pg.Client) => {
        await holder.query(
          `INSERT INTO secrets (id, key, current_version, environment) VALUES (gen_random_uuid(), 'FRESH', 1, 'doomed')`,
        );
      };
      const { back, deleted } = await interleave(sameKey, () =>
        send('POST', secrets('doomed'), { key: 'FRESH', value: secretValue() }),
      );
      expect(back.statusCode).toBe(201);
      await secretWon(deleted, 'FRESH');
    });
  });
}
