import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, startTopology, type Topology } from '../../scripts/topology.js';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';
import { call, sleep } from './cluster.js';
import { forbid } from './hygiene.js';
import { pick, report } from './mode.js';

/**
 * Read replicas (DATABASE_READ_URL) on real processes: a primary and an asynchronous
 * streaming replica (scripts/topology.ts), Redis, and service instances that read from the
 * replica. Callers are told apart by their token's sub (the read-your-writes fence is per
 * caller). Which pool answered is read from each instance's /metrics (db_reads_total).
 */

const PAIRS = pick(1000, 5000);
const CALLERS = 8;
const figures: Record<string, unknown> = {};

let topo: Topology;
let replicaPool: string;
const inst: string[] = [];
const tokens = new Map<string, string>();
let tokenFor: (sub: string) => string;

const as = (sub: string) => {
  let t = tokens.get(sub);
  if (!t) {
    t = tokenFor(sub);
    tokens.set(sub, t);
  }
  return t;
};

/** Reads the instance's count of reads served by each pool. */
async function readsByPool(base: string): Promise<{ primary: number; replica: number; overruled: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const get = (pool: string) =>
    Number(
      new RegExp(`^db_reads_total\\{pool="${pool.replace(/\./g, '\\.')}"\\} (\\d+)`, 'm').exec(text)?.[1] ??
        0,
    );
  const overruled = Number(/^db_replica_reads_overruled_total (\d+)/m.exec(text)?.[1] ?? 0);
  return { primary: get('primary'), replica: get(replicaPool), overruled };
}

async function replicaOn(base: string) {
  const r = await fetch(`${base}/ready`);
  const body = (await r.json()) as {
    replicas?: { name: string; status: string; lagMs: number | null; lagBytes: number | null }[];
  };
  return { status: r.status, replica: body.replicas?.[0] };
}

/** Waits (bounded) until every instance sees the replica serving and fully replayed. */
/**
 * pg_reload_conf() only signals: the replica's startup process takes the new
 * recovery_min_apply_delay when it next gets the CPU, which on a busy machine can be after
 * the test's first write has already been replayed. Waits until the delay holds back a
 * commit: a probe transaction (txid_current() commits a record and nothing else) that the
 * replica has received but still not replayed a second later. A probe replayed at once
 * came too early; the next one is tried.
 */
async function applyDelayInEffect(primary: string, replica: string, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await sql(primary, 'SELECT txid_current()');
    const lsn = (await sql<{ lsn: string }>(primary, 'SELECT pg_current_wal_flush_lsn()::text AS lsn'))[0]!
      .lsn;
    const state = () =>
      sql<{ received: boolean; replayed: boolean }>(
        replica,
        `SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS received, pg_last_wal_replay_lsn() >= $1::pg_lsn AS replayed`,
        [lsn],
      ).then((r) => r[0]!);
    let s = await state();
    while (!s.received && !s.replayed && Date.now() < deadline) {
      await sleep(50);
      s = await state();
    }
    if (s.replayed) continue;
    await sleep(1000);
    if (!(await state()).replayed) return;
  }
  throw new Error('recovery_min_apply_delay did not take effect on the replica');
}

async function caughtUp(bases: string[], ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(bases.map(replicaOn));
    if (states.every((s) => s.replica?.status === 'serving' && s.replica.lagBytes === 0)) return;
    if (Date.now() > until)
      throw new Error(`replica not caught up after ${ms} ms: ${JSON.stringify(states)}`);
    await sleep(100);
  }
}

/**
 * Runs one read on `base` and returns its answer once the replica served it (the instance's
 * replica count rose by one and its primary count did not: no fall-back, not overruled).
 * A read the primary answered (the replica over the lag bound on a busy machine, or the
 * instance's poller not yet aware that the replica replayed the caller's write) is repeated
 * until the replica answers, within a bound: the check waits for the event instead of
 * counting on timing. Only for reads nothing else sends to that instance meanwhile.
 */
async function onReplica<T>(base: string, read: () => Promise<T>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const before = await readsByPool(base);
    const out = await read();
    const after = await readsByPool(base);
    if (after.replica - before.replica === 1 && after.primary === before.primary) return out;
    expect(Date.now(), `the replica did not serve the read within ${ms} ms`).toBeLessThan(until);
    await caughtUp([base]);
    await sleep(100);
  }
}

const create = (base: string, who: string, key: string, value: string, extra: object = {}) =>
  call(base, as(who), 'POST', '/api/secrets', { key, value, ...extra });

beforeAll(async () => {
  topo = await startTopology({
    syncStandby: false,
    asyncReplica: true,
    pgbouncer: false,
    redis: 'own',
    instances: 0,
    // Free ports, not a fixed base: 581xx lies in Linux's ephemeral range (32768-60999), where
    // any outgoing connection of a suite running beside this one (the benchmark smoke run's
    // load generator, a pg pool) may already hold it.
    onLog: (_i, line) => capturedLogs.push(line),
  });
  forbid(topo.env.ENCRYPTION_KEY ?? '');
  forbid(topo.env.JWT_SECRET ?? '');
  const config = loadConfig({ ...topo.env, NODE_ENV: 'test' });
  tokenFor = (sub) => forbid(mintAdminToken(config, topo.env.JWT_SECRET ?? '', { sub, ttlSeconds: 3600 }));
  replicaPool = `127.0.0.1:${topo.asyncReplica!.port}`;
  const env = { DATABASE_READ_URL: topo.urls.asyncReplica!, DATABASE_READ_MAX_LAG_MS: '1000' };
  // The first applies the migrations; the second boots on a migrated database.
  inst.push((await topo.startInstance(env)).url);
  inst.push((await topo.startInstance(env)).url);
  await caughtUp(inst);
}, 240_000);

afterAll(async () => {
  report('replicas', 'postgres-topology', figures);
  await topo?.stop();
});

describe('reads from a streaming replica', () => {
  it('serves values and lists that match the primary', async () => {
    const values = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      const key = `MATCH_${i}`;
      const value = secretValue('match');
      values.set(key, value);
      expect((await create(inst[0]!, 'writer', key, value, { description: `d${i}` })).status).toBe(201);
    }
    await caughtUp(inst);
    const before = await readsByPool(inst[1]!);

    // Metadata first (reading values moves lastUsedAt on the primary). Every read below is
    // checked to have been answered by the replica: a match with the primary proves nothing
    // about the replica if the primary answered.
    const listed = await onReplica(inst[1]!, () =>
      call(inst[1]!, as('reader'), 'GET', '/api/secrets?prefix=MATCH_'),
    );
    expect(listed.status).toBe(200);
    const fromPrimary = await sql<{ id: string; key: string; description: string; revision: string }>(
      topo.urls.primary,
      `SELECT id, key, description, is_active, current_version FROM secrets WHERE key LIKE 'MATCH\\_%' ORDER BY seq DESC`,
    );
    const secrets = (JSON.parse(listed.body) as { secrets: Record<string, unknown>[] }).secrets;
    expect(secrets.map((s) => [s.id, s.key, s.description, s.isActive, s.version])).toEqual(
      fromPrimary.map((r) => [r.id, r.key, r.description, true, 1]),
    );

    for (const [key, value] of values) {
      const r = await onReplica(inst[1]!, () => call(inst[1]!, as('reader'), 'GET', `/api/secrets/${key}`));
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ key, value });
      const v1 = await onReplica(inst[1]!, () =>
        call(inst[1]!, as('reader'), 'GET', `/api/secrets/${key}?version=1`),
      );
      expect(JSON.parse(v1.body).value).toBe(value);
    }
    const after = await readsByPool(inst[1]!);
    figures.matchServedByReplica = after.replica - before.replica;
    // The list and the 40 reads, each answered by the replica (onReplica), at least once.
    expect(after.replica - before.replica).toBeGreaterThanOrEqual(41);
  });

  it(`read-your-own-write holds for ${PAIRS} write-then-read pairs, across two instances sharing Redis`, async () => {
    const before = await Promise.all(inst.map(readsByPool));
    const violations: string[] = [];
    const statuses: Record<string, number> = {};
    const count = (s: number) => {
      statuses[s] = (statuses[s] ?? 0) + 1;
    };
    const perCaller = Math.ceil(PAIRS / CALLERS);
    await Promise.all(
      Array.from({ length: CALLERS }, async (_, c) => {
        const who = `ryow-${c}`;
        const key = `RYOW_${c}`;
        count((await create(inst[c % 2]!, who, key, secretValue('ryow'))).status);
        for (let i = 0; i < perCaller; i++) {
          // The write on one instance, the read on the other: only the shared fence can tell
          // the second instance about the write.
          const w = inst[(c + i) % 2]!;
          const r = inst[(c + i + 1) % 2]!;
          if (i % 5 === 4) {
            // A new key must show in the caller's next list (lists have no per-key check).
            const fresh = `RYOW_${c}_L${i}`;
            const made = await create(w, who, fresh, secretValue('ryow'));
            count(made.status);
            const listed = await call(r, as(who), 'GET', `/api/secrets?prefix=${fresh}`);
            count(listed.status);
            if (!listed.body.includes(`"key":"${fresh}"`)) violations.push(`${fresh}: missing from the list`);
          } else {
            const value = secretValue('ryow');
            count((await call(w, as(who), 'PUT', `/api/secrets/${key}`, { value })).status);
            const got = await call(r, as(who), 'GET', `/api/secrets/${key}`);
            count(got.status);
            if (got.status !== 200 || JSON.parse(got.body).value !== value)
              violations.push(`${key} pair ${i}: ${got.status}`);
          }
          // Some think time, so that some reads come after the replica replayed the write.
          if (i % 10 === 0) await sleep(Math.floor(Math.random() * 300));
        }
      }),
    );
    const after = await Promise.all(inst.map(readsByPool));
    const reads = perCaller * CALLERS; // one read (a GET or a list) per pair
    figures.ryow = {
      pairs: perCaller * CALLERS,
      callers: CALLERS,
      statuses,
      servedByReplica: after.reduce((n, a, i) => n + a.replica - before[i]!.replica, 0),
      servedByPrimary: after.reduce((n, a, i) => n + a.primary - before[i]!.primary, 0),
    };
    expect(violations).toEqual([]);
    expect(Object.keys(statuses).every((s) => ['200', '201'].includes(s))).toBe(true);
    // Every read was answered by one pool or the other (an overruled replica read counts on both).
    const overruled = after.reduce((n, a, i) => n + a.overruled - before[i]!.overruled, 0);
    const { servedByReplica, servedByPrimary } = figures.ryow as Record<string, number>;
    expect(servedByReplica! + servedByPrimary! - overruled).toBe(reads);

    // And the fence lets the replica answer once it has replayed the write: per caller, a write
    // on one instance, then (replica caught up) a read on the other that the replica answers
    // with the value just written. Sequential, so each instance's counts are this read's.
    let replicaAfterWrite = 0;
    for (let c = 0; c < CALLERS; c++) {
      const who = `ryow-${c}`;
      const key = `RYOW_${c}`;
      const value = secretValue('ryow');
      expect((await call(inst[c % 2]!, as(who), 'PUT', `/api/secrets/${key}`, { value })).status).toBe(200);
      await caughtUp(inst);
      const r = inst[(c + 1) % 2]!;
      const got = await onReplica(r, () => call(r, as(who), 'GET', `/api/secrets/${key}`));
      expect(JSON.parse(got.body).value).toBe(value);
      replicaAfterWrite++;
    }
    (figures.ryow as Record<string, unknown>).replicaReadsAfterOwnWrite = replicaAfterWrite;
  }, 300_000);

  it('never serves a deleted or expired secret while replay is paused', async () => {
    const keys = {
      del: ['PAUSE_DEL_1', 'PAUSE_DEL_2'],
      exp: ['PAUSE_EXP_1', 'PAUSE_EXP_2'],
      keep: ['PAUSE_KEEP'],
    };
    for (const key of [...keys.del, ...keys.exp, ...keys.keep])
      expect((await create(inst[0]!, 'writer', key, secretValue('pause'))).status).toBe(201);
    await caughtUp(inst);
    for (const key of [...keys.del, ...keys.exp])
      expect((await call(inst[1]!, as('reader'), 'GET', `/api/secrets/${key}`)).status).toBe(200);

    await sql(topo.urls.asyncReplica!, 'SELECT pg_wal_replay_pause()');
    try {
      // Another caller deletes and expires them: the reader has no fence to go by.
      for (const key of keys.del)
        expect((await call(inst[0]!, as('writer'), 'DELETE', `/api/secrets/${key}`)).status).toBe(200);
      const past = new Date(Date.now() - 60_000).toISOString();
      for (const key of keys.exp)
        expect(
          (await call(inst[0]!, as('writer'), 'PUT', `/api/secrets/${key}`, { expiresAt: past })).status,
        ).toBe(200);
      const until = Date.now() + 2_000;
      let rounds = 0;
      while (Date.now() < until) {
        rounds++;
        for (const base of inst) {
          for (const key of keys.del) {
            const r = await call(base, as('reader'), 'GET', `/api/secrets/${key}`);
            expect(r.status, key).toBe(404);
            expect(r.body).toContain('inactive');
          }
          for (const key of keys.exp) {
            const r = await call(base, as('reader'), 'GET', `/api/secrets/${key}`);
            expect(r.status, key).toBe(404);
            expect(r.body).toContain('expired');
          }
          expect((await call(base, as('reader'), 'GET', `/api/secrets/${keys.keep[0]}`)).status).toBe(200);
        }
      }
      figures.pausedRounds = rounds;
      // The lag check has seen the pause: the replica serves nothing meanwhile.
      expect((await replicaOn(inst[0]!)).replica?.status).toBe('paused');
    } finally {
      await sql(topo.urls.asyncReplica!, 'SELECT pg_wal_replay_resume()');
    }
    await caughtUp(inst);
  });

  it('a replica serving while behind (apply delay, lag bound 1 h) still never serves a deleted, expired or replaced value', async () => {
    // A third instance that tolerates a replica an hour behind: only the primary's check
    // of each replica read (in the audit batch) stands between a stale row and the caller.
    const lenient = (
      await topo.startInstance({
        DATABASE_READ_URL: topo.urls.asyncReplica!,
        DATABASE_READ_MAX_LAG_MS: '3600000',
      })
    ).url;
    const keys = { del: 'LAG_DEL', exp: 'LAG_EXP', upd: 'LAG_UPD', keep: 'LAG_KEEP' };
    const first = secretValue('lag');
    for (const key of Object.values(keys))
      expect(
        (await create(inst[0]!, 'writer', key, key === keys.upd ? first : secretValue('lag'))).status,
      ).toBe(201);
    await caughtUp([...inst, lenient]);

    await sql(topo.urls.asyncReplica!, `ALTER SYSTEM SET recovery_min_apply_delay = '1h'`);
    await sql(topo.urls.asyncReplica!, 'SELECT pg_reload_conf()');
    try {
      await applyDelayInEffect(topo.urls.primary, topo.urls.asyncReplica!);
      const second = secretValue('lag');
      expect((await call(inst[0]!, as('writer'), 'DELETE', `/api/secrets/${keys.del}`)).status).toBe(200);
      const past = new Date(Date.now() - 60_000).toISOString();
      expect(
        (await call(inst[0]!, as('writer'), 'PUT', `/api/secrets/${keys.exp}`, { expiresAt: past })).status,
      ).toBe(200);
      expect(
        (await call(inst[0]!, as('writer'), 'PUT', `/api/secrets/${keys.upd}`, { value: second })).status,
      ).toBe(200);
      // The replica really is behind: it still has the old state.
      const onReplica = await sql<{ key: string; is_active: boolean }>(
        topo.urls.asyncReplica!,
        `SELECT key, is_active FROM secrets WHERE key = $1`,
        [keys.del],
      );
      expect(onReplica).toEqual([{ key: keys.del, is_active: true }]);

      const before = await readsByPool(lenient);
      for (let round = 0; round < 5; round++) {
        const del = await call(lenient, as('reader'), 'GET', `/api/secrets/${keys.del}`);
        expect(del.status).toBe(404);
        const exp = await call(lenient, as('reader'), 'GET', `/api/secrets/${keys.exp}`);
        expect(exp.status).toBe(404);
        const upd = await call(lenient, as('reader'), 'GET', `/api/secrets/${keys.upd}`);
        expect(JSON.parse(upd.body).value).toBe(second);
        const keep = await call(lenient, as('reader'), 'GET', `/api/secrets/${keys.keep}`);
        expect(keep.status).toBe(200);
      }
      const after = await readsByPool(lenient);
      figures.lagging = {
        replicaReads: after.replica - before.replica,
        primaryReads: after.primary - before.primary,
        overruled: after.overruled - before.overruled,
        ready: (await replicaOn(lenient)).replica,
      };
      // The replica did serve (the unchanged key), and the primary answered the stale ones.
      expect(after.replica - before.replica).toBeGreaterThanOrEqual(5);
      // Reads of the three changed keys went to the replica first and were overruled by the
      // primary's check (each of the 15 is answered by the primary, overruled or routed there).
      expect(after.overruled - before.overruled).toBeGreaterThanOrEqual(3);
      expect(after.primary - before.primary).toBeGreaterThanOrEqual(15);
    } finally {
      await sql(topo.urls.asyncReplica!, 'ALTER SYSTEM RESET recovery_min_apply_delay');
      await sql(topo.urls.asyncReplica!, 'SELECT pg_reload_conf()');
    }
  });

  it('environments: the same key in staging and default read apart, checked by (environment, key), and a staging key reaches default by no path', async () => {
    const admin = as('env-admin');
    expect((await call(inst[0]!, admin, 'POST', '/api/environments', { name: 'staging' })).status).toBe(201);
    const values = { default: secretValue('env-default'), staging: secretValue('env-staging') };
    const url = { default: '/api/secrets', staging: '/api/environments/staging/secrets' };
    for (const env of ['default', 'staging'] as const)
      expect(
        (await call(inst[0]!, admin, 'POST', url[env], { key: 'ENV_KEY', value: values[env] })).status,
      ).toBe(201);
    // Same key, same revision (1) in both: a staleness check that looked at the wrong
    // environment's row would find nothing wrong below.
    expect(
      await sql(
        topo.urls.primary,
        `SELECT environment, revision::int FROM secrets WHERE key = 'ENV_KEY' ORDER BY environment`,
      ),
    ).toEqual([
      { environment: 'default', revision: 1 },
      { environment: 'staging', revision: 1 },
    ]);
    await caughtUp(inst);

    // Read apart through the replica: each environment's value and list.
    for (const env of ['default', 'staging'] as const) {
      const r = await onReplica(inst[1]!, () =>
        call(inst[1]!, as('env-reader'), 'GET', `${url[env]}/ENV_KEY`),
      );
      expect(r.status, env).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ key: 'ENV_KEY', value: values[env] });
    }
    const listed = await onReplica(inst[1]!, () => call(inst[1]!, as('env-reader'), 'GET', url.staging));
    expect((JSON.parse(listed.body) as { secrets: { key: string }[] }).secrets.map((s) => s.key)).toEqual([
      'ENV_KEY',
    ]);

    // An access key limited to staging: staging through the replica, default by no route.
    const made = await call(inst[0]!, admin, 'POST', '/api/access-keys', {
      name: 'staging-only',
      scopes: ['secrets:read', 'secrets:list', 'secrets:write'],
      environments: ['staging'],
    });
    expect(made.status).toBe(201);
    const key = forbid(JSON.parse(made.body).token as string);
    await caughtUp(inst);
    const own = await onReplica(inst[1]!, () => call(inst[1]!, key, 'GET', `${url.staging}/ENV_KEY`));
    expect(JSON.parse(own.body).value).toBe(values.staging);
    for (const base of inst) {
      const before = await readsByPool(base);
      for (const path of [
        '/api/secrets/ENV_KEY',
        '/api/secrets/ENV_MISSING',
        '/api/secrets/ENV_KEY?version=1',
        '/api/secrets',
        '/api/secrets/export?format=json',
        '/api/environments/default/secrets/ENV_KEY',
      ]) {
        const r = await call(base, key, 'GET', path);
        expect(r.status, path).toBe(403);
        expect(r.body, path).not.toContain(values.default);
        expect(JSON.parse(r.body).message, path).toBe(
          'Access key "staging-only" does not cover the default environment (/api/secrets)',
        );
      }
      // Refused before any lookup: neither pool answered a read for them (the read of
      // staging above, through onReplica, shows the count moves when one does).
      const after = await readsByPool(base);
      expect(after.replica + after.primary - before.replica - before.primary).toBe(0);
      const rendered = await call(base, key, 'POST', '/api/environments/staging/secrets/render', {
        template: '{{Secrets.ENV_KEY}}',
      });
      expect(JSON.parse(rendered.body).rendered).toBe(values.staging);
    }

    // A fresh write in staging, with the replica an hour behind and an instance that
    // tolerates it: the primary's check compares staging's row, so the stale staging value
    // is overruled, while default's (unchanged, same key, same old revision) is served.
    const lenient = (
      await topo.startInstance({
        DATABASE_READ_URL: topo.urls.asyncReplica!,
        DATABASE_READ_MAX_LAG_MS: '3600000',
      })
    ).url;
    await caughtUp([...inst, lenient]);
    await sql(topo.urls.asyncReplica!, `ALTER SYSTEM SET recovery_min_apply_delay = '1h'`);
    await sql(topo.urls.asyncReplica!, 'SELECT pg_reload_conf()');
    try {
      await applyDelayInEffect(topo.urls.primary, topo.urls.asyncReplica!);
      const fresh = secretValue('env-staging2');
      expect((await call(inst[0]!, admin, 'PUT', `${url.staging}/ENV_KEY`, { value: fresh })).status).toBe(
        200,
      );
      expect(
        await sql(
          topo.urls.asyncReplica!,
          `SELECT environment, revision::int FROM secrets WHERE key = 'ENV_KEY' ORDER BY environment`,
        ),
      ).toEqual([
        { environment: 'default', revision: 1 },
        { environment: 'staging', revision: 1 },
      ]);
      const before = await readsByPool(lenient);
      for (let round = 0; round < 5; round++) {
        // Another caller than the writer: no read-your-writes fence sends it to the primary.
        for (const who of [as('env-reader'), key]) {
          const s = await call(lenient, who, 'GET', `${url.staging}/ENV_KEY`);
          expect(s.status).toBe(200);
          expect(JSON.parse(s.body).value).toBe(fresh);
        }
        const d = await call(lenient, as('env-reader'), 'GET', `${url.default}/ENV_KEY`);
        expect(JSON.parse(d.body).value).toBe(values.default);
      }
      const after = await readsByPool(lenient);
      // Staging's ten reads were answered by the primary (overruled or routed there), default's
      // five by the replica, not overruled.
      expect(after.overruled - before.overruled).toBeGreaterThanOrEqual(1);
      expect(after.primary - before.primary).toBeGreaterThanOrEqual(10);
      expect(after.replica - before.replica - (after.overruled - before.overruled)).toBeGreaterThanOrEqual(5);
    } finally {
      await sql(topo.urls.asyncReplica!, 'ALTER SYSTEM RESET recovery_min_apply_delay');
      await sql(topo.urls.asyncReplica!, 'SELECT pg_reload_conf()');
    }
    await caughtUp(inst);
  }, 120_000);

  it('replica down: reads are served by the primary, /ready stays ready', async () => {
    const value = secretValue('down');
    expect((await create(inst[0]!, 'writer', 'DOWN_KEY', value)).status).toBe(201);
    await caughtUp(inst);
    await topo.asyncReplica!.stop('immediate');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      for (const base of inst) {
        const r = await call(base, as('reader'), 'GET', '/api/secrets/DOWN_KEY');
        statuses.push(r.status);
        if (r.status === 200) expect(JSON.parse(r.body).value).toBe(value);
        const l = await call(base, as('reader'), 'GET', '/api/secrets?prefix=DOWN_');
        statuses.push(l.status);
      }
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    for (const base of inst) {
      const ready = await replicaOn(base);
      expect(ready.status).toBe(200);
      expect(ready.replica?.status).toBe('down');
    }
  });
});
