import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgCluster, startCluster } from '../helpers/pg-cluster.js';
import { secretValue } from '../helpers/secrets.js';
import { type ServiceProcess, startService } from '../helpers/service-process.js';
import { call, expectStorageInvariants, runFor, serviceEnv } from './cluster.js';
import { scanLogs } from './hygiene.js';
import { pick, report } from './mode.js';

/**
 * Three service processes on one PostgreSQL database (a throwaway cluster), booted at the
 * same moment (migrations and key canaries race), then storms of create, update, delete
 * and revive on a handful of keys from every instance at once. Invariants: no 5xx, one
 * row per key, versions contiguous, every current value decrypts on every instance and is
 * a value somebody wrote, concurrent creates and revives have exactly one winner.
 * Compare-and-set storms: every instance sends PUTs (then DELETEs) carrying the same If-Match
 * ETag at once; exactly one wins, the others get 412 with the winner's ETag, and the versions
 * stay the newest MAX_VERSIONS (20) ending at current after more than 20 rounds.
 */

const INSTANCES = 3;
const KEYS = ['HOT_A', 'HOT_B', 'HOT_C', 'HOT_D'];
const STORM_MS = pick(3_000, 60_000);
const CAS_ROUNDS = pick(25, 200); // more than MAX_VERSIONS (20): pruning runs under the race
const WORKERS_PER_INSTANCE = 4;
const figures = {
  instances: INSTANCES,
  requests: 0,
  byStatus: {} as Record<number, number>,
  races: 0,
  casRounds: 0,
  casLosers: 0,
  storage: {},
};

let cluster: PgCluster;
let svcs: ServiceProcess[] = [];
let token: string;
const written = new Map<string, Set<string>>(KEYS.map((k) => [k, new Set()]));

// Weighted by repetition: reads and writes dominate, deletes and revives keep keys moving.
const OPS = [
  'update',
  'update',
  'reveal',
  'reveal',
  'reveal',
  'remove',
  'remove',
  'create',
  'create',
  'reactivate',
  'reserve',
];

const ALLOWED: Record<string, number[]> = {
  create: [201, 409],
  update: [200, 404],
  remove: [200, 403, 404],
  reactivate: [200, 404],
  reveal: [200, 404],
  reserve: [200, 404],
};

beforeAll(async () => {
  cluster = await startCluster();
  const made = serviceEnv(cluster.url());
  token = made.token;
  // All three boot at once against an empty database.
  svcs = await Promise.all(Array.from({ length: INSTANCES }, () => startService(made.env)));
}, 180_000);
afterAll(async () => {
  report('instances', 'postgres-cluster', figures);
  await Promise.all(svcs.map((s) => s.kill('SIGTERM')));
  await cluster?.destroy();
});

const base = (i: number) => svcs[i % INSTANCES]!.url;

describe('three instances on one database', () => {
  it('concurrent creates of one new key: exactly one winner per key, on any instance', async () => {
    for (const key of KEYS) {
      const attempts = Array.from({ length: INSTANCES * WORKERS_PER_INSTANCE }, (_, i) => {
        const value = secretValue('race');
        written.get(key)!.add(value);
        return call(base(i), token, 'POST', '/api/secrets', { key, value });
      });
      const res = await Promise.all(attempts);
      figures.requests += res.length;
      figures.races++;
      expect(res.filter((r) => r.status === 201)).toHaveLength(1);
      expect(res.filter((r) => r.status === 409)).toHaveLength(res.length - 1);
    }
  });

  it('concurrent revives of a soft-deleted key: exactly one winner', async () => {
    const key = KEYS[0]!;
    expect((await call(base(0), token, 'DELETE', `/api/secrets/${key}`)).status).toBe(200);
    const res = await Promise.all(
      Array.from({ length: INSTANCES * WORKERS_PER_INSTANCE }, (_, i) => {
        const value = secretValue('revive');
        written.get(key)!.add(value);
        return call(base(i), token, 'POST', '/api/secrets', { key, value });
      }),
    );
    figures.requests += res.length;
    figures.races++;
    expect(res.filter((r) => r.status === 201)).toHaveLength(1);
  });

  it(`a ${STORM_MS / 1000} s storm of create/update/delete/revive/read keeps every invariant`, async () => {
    const violations: string[] = [];
    let running = true;
    const worker = async (w: number) => {
      const url = base(w);
      while (running) {
        const key = KEYS[Math.floor(Math.random() * KEYS.length)]!;
        const op = OPS[Math.floor(Math.random() * OPS.length)]!;
        let r: Awaited<ReturnType<typeof call>>;
        if (op === 'create' || op === 'update') {
          const value = secretValue('storm');
          written.get(key)!.add(value);
          r =
            op === 'create'
              ? await call(url, token, 'POST', '/api/secrets', { key, value })
              : await call(url, token, 'PUT', `/api/secrets/${key}`, { value });
        } else if (op === 'remove') r = await call(url, token, 'DELETE', `/api/secrets/${key}`);
        else if (op === 'reactivate')
          r = await call(url, token, 'PUT', `/api/secrets/${key}`, { isActive: true });
        else if (op === 'reserve')
          r = await call(url, token, 'PUT', `/api/secrets/${key}`, { isReserved: Math.random() < 0.4 });
        else r = await call(url, token, 'GET', `/api/secrets/${key}`);
        figures.requests++;
        figures.byStatus[r.status] = (figures.byStatus[r.status] ?? 0) + 1;
        if (!ALLOWED[op]!.includes(r.status))
          violations.push(`${op} ${key} -> ${r.status} ${r.error ?? r.body}`);
        if (op === 'reveal' && r.status === 200 && !written.get(key)!.has(JSON.parse(r.body).value)) {
          violations.push(`${key} returned a value nobody wrote`);
        }
      }
    };
    const storm = Promise.all(Array.from({ length: INSTANCES * WORKERS_PER_INSTANCE }, (_, w) => worker(w)));
    // STORM_MS at least, and until 50 requests have succeeded: a busy machine lengthens the
    // storm rather than failing the count below.
    await runFor(
      STORM_MS,
      () => (figures.byStatus[200] ?? 0) > 50,
      'enough successful requests in the storm',
    );
    running = false;
    await storm;
    expect(violations.slice(0, 10)).toEqual([]);
    expect(figures.byStatus[200] ?? 0).toBeGreaterThan(50);

    figures.storage = await expectStorageInvariants(cluster.url());
    // Every key, made active, decrypts on every instance to the same value, one that was written.
    for (const key of KEYS) {
      await call(base(0), token, 'PUT', `/api/secrets/${key}`, { isActive: true });
      const seen = new Set<string>();
      for (let i = 0; i < INSTANCES; i++) {
        const r = await call(base(i), token, 'GET', `/api/secrets/${key}`);
        expect(r.status, r.body).toBe(200);
        const v = JSON.parse(r.body).value as string;
        expect(written.get(key)!.has(v)).toBe(true);
        seen.add(v);
      }
      expect(seen.size).toBe(1);
    }
    for (const s of svcs) expect(s.child.exitCode).toBeNull();
    scanLogs();
  }, 300_000);

  it(`${CAS_ROUNDS} compare-and-set rounds (one If-Match ETag, every instance at once): one winner each`, async () => {
    const key = 'CAS_KEY';
    const values = new Set<string>();
    const first = secretValue('cas');
    values.add(first);
    const created = await call(base(0), token, 'POST', '/api/secrets', { key, value: first });
    expect(created.status, `${created.error ?? ''} ${created.body}`).toBe(201);
    let etag = (await call(base(1), token, 'GET', `/api/secrets/${key}`)).etag;
    expect(etag).toMatch(/^"[0-9a-f-]+\.\d+"$/);
    const firstTag = etag!; // genuine, issued by instance 1; stale after the first round
    const racers = INSTANCES * WORKERS_PER_INSTANCE;
    const race = (method: 'PUT' | 'DELETE', tag: string) =>
      Promise.all(
        Array.from({ length: racers }, (_, i) => {
          const value = secretValue('cas');
          values.add(value);
          return call(
            base(i),
            token,
            method,
            `/api/secrets/${key}`,
            method === 'PUT' ? { value } : undefined,
            5_000,
            {
              'if-match': tag,
            },
          ).then((r) => ({ ...r, value }));
        }),
      );
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const res = await race('PUT', etag!);
      figures.requests += res.length;
      figures.casRounds++;
      const winners = res.filter((r) => r.status === 200);
      const losers = res.filter((r) => r.status === 412);
      expect(winners, `round ${round}: ${res.map((r) => r.error ?? r.status).join(',')}`).toHaveLength(1);
      expect(losers).toHaveLength(racers - 1);
      figures.casLosers += losers.length;
      const winner = winners[0]!;
      // Every loser is told the state it lost to: the winner's new ETag.
      for (const l of losers) {
        expect(JSON.parse(l.body).error).toBe('PRECONDITION_FAILED');
        expect(l.etag).toBe(winner.etag);
      }
      const back = await call(base(round + 2), token, 'GET', `/api/secrets/${key}`);
      expect(JSON.parse(back.body).value).toBe(winner.value);
      expect(back.etag).toBe(winner.etag);
      etag = winner.etag!;
    }
    // A stale tag (the first one, genuinely issued) never wins again on any instance: every
    // racer is told the current tag, and the value stays the last winner's. A tag nobody
    // issued is refused the same way. The DELETE race has one winner too.
    expect(firstTag).not.toBe(etag);
    const current = JSON.parse((await call(base(0), token, 'GET', `/api/secrets/${key}`)).body).value;
    const stale = await race('PUT', firstTag);
    for (const r of stale) {
      expect(r.status, `${r.error ?? ''} ${r.body}`).toBe(412);
      expect(r.etag).toBe(etag);
    }
    const madeUp = await race('PUT', '"00000000-0000-4000-8000-000000000000.1"');
    expect(madeUp.every((r) => r.status === 412)).toBe(true);
    for (let i = 0; i < INSTANCES; i++) {
      const r = await call(base(i), token, 'GET', `/api/secrets/${key}`);
      expect(r.etag).toBe(etag);
      expect(JSON.parse(r.body).value).toBe(current);
    }
    const del = await race('DELETE', etag!);
    figures.requests += stale.length + madeUp.length + del.length;
    expect(del.filter((r) => r.status === 200)).toHaveLength(1);
    expect(del.filter((r) => r.status === 412)).toHaveLength(racers - 1);

    const storage = await expectStorageInvariants(cluster.url());
    const c = await call(base(0), token, 'GET', `/api/secrets/${key}/versions`);
    const list = (JSON.parse(c.body) as { versions: { version: number }[] }).versions;
    expect(list).toHaveLength(20);
    expect(list[0]!.version).toBe(CAS_ROUNDS + 1);
    figures.storage = storage;
    scanLogs();
  }, 300_000);
});
