import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTopology, type Topology } from '../../scripts/topology.js';
import { capturedLogs } from '../helpers/secrets.js';
import { call, expectStorageInvariants, type Outcome, sleep } from './cluster.js';
import { forbid, scanLogs } from './hygiene.js';
import { LONG, pick, report } from './mode.js';

/**
 * Fail-over with PostgreSQL's own tools (scripts/topology.ts): a primary with a synchronous
 * standby (synchronous_commit on), three service processes whose DATABASE_URL lists both
 * hosts with target_session_attrs=read-write. Under writes and reads from all three, the
 * primary is killed (immediate shutdown: no checkpoint, clients cut) and the standby
 * promoted with pg_ctl promote. Checked: every write acknowledged with 2xx is on the new
 * primary and decrypts to what was written; every read answered 2xx returned a value that
 * was current (never older than a write acknowledged before the read was sent); failures
 * are 503 with Retry-After and nothing else; versions contiguous; the audit chain verifies;
 * the same processes serve again (no restart). The unavailability window is measured.
 */

const BEFORE_MS = pick(3_000, 20_000);
const AFTER_MS = pick(3_000, 20_000);
const DETECT_MS = pick(500, 2_000); // kill -> promote: what a fail-over manager would take
const WRITERS_PER_INSTANCE = 2;
const READERS_PER_INSTANCE = 2;
/** Fewer updates per key than MAX_VERSIONS (20): no version of a key is ever pruned. */
const UPDATES_PER_KEY = 15;

interface KeyLog {
  /** Every value sent for this key, in order (one writer per key). */
  attempts: string[];
  /** For acknowledged writes: index into attempts and when the acknowledgement arrived. */
  acked: { index: number; at: number }[];
}

let topo: Topology;
let token: string;

beforeAll(async () => {
  topo = await startTopology({
    asyncReplica: false,
    pgbouncer: false,
    redis: false,
    instances: 3,
    instanceDatabase: 'multi',
    env: { AUDIT_SEAL_INTERVAL_MS: '0', DATABASE_CONNECT_TIMEOUT_MS: '5000' },
    onLog: (_i, line) => capturedLogs.push(line),
  });
  forbid(topo.env.ENCRYPTION_KEY ?? '');
  forbid(topo.env.JWT_SECRET ?? '');
  token = forbid(topo.adminToken());
}, 180_000);

afterAll(async () => {
  await topo?.stop();
});

function expectAllowed(o: Outcome, ok: number[], what: string) {
  if (ok.includes(o.status)) return;
  // The only failure allowed: 503 with Retry-After (the database is switching).
  expect({
    what,
    status: o.status,
    retryAfter: o.retryAfter,
    error: o.error,
    body: o.body.slice(0, 200),
  }).toEqual({
    what,
    status: 503,
    retryAfter: expect.stringMatching(/^\d+$/),
    error: undefined,
    body: expect.any(String),
  });
}

describe('fail-over to the synchronous standby', () => {
  it('loses no acknowledged write, never answers wrong, and serves again without a restart', async () => {
    const keys = new Map<string, KeyLog>();
    let figures: Record<string, unknown> = {};
    {
      const primary = topo.primary;
      const standby = topo.syncStandby!;
      const outcomes: { kind: 'write' | 'read'; inst: number; o: Outcome }[] = [];
      let stopAt = Number.POSITIVE_INFINITY;
      let seq = 0;
      const bases = topo.instances.map((i) => i.url);

      const writer = async (w: number) => {
        const inst = w % bases.length;
        const base = bases[inst]!;
        while (Date.now() < stopAt) {
          const key = `FO_${w}_${seq++}`;
          const log: KeyLog = { attempts: [], acked: [] };
          const v0 = `v0-${randomBytes(12).toString('hex')}`;
          log.attempts.push(v0);
          keys.set(key, log);
          const created = await call(base, token, 'POST', '/api/secrets', { key, value: v0 });
          outcomes.push({ kind: 'write', inst, o: created });
          expectAllowed(created, [201], `create ${key}`);
          if (created.status !== 201) {
            // Committed or not, unknown: the key is left out of the checks (it is still
            // checked for contiguous versions and the audit chain).
            keys.delete(key);
            continue;
          }
          log.acked.push({ index: 0, at: created.t1 });
          for (let u = 1; u <= UPDATES_PER_KEY && Date.now() < stopAt; u++) {
            const v = `v${u}-${randomBytes(12).toString('hex')}`;
            log.attempts.push(v);
            const r = await call(base, token, 'PUT', `/api/secrets/${key}`, { value: v });
            outcomes.push({ kind: 'write', inst, o: r });
            expectAllowed(r, [200], `update ${key}`);
            if (r.status === 200) log.acked.push({ index: log.attempts.length - 1, at: r.t1 });
          }
        }
      };

      const reader = async (r: number) => {
        const inst = r % bases.length;
        const base = bases[inst]!;
        while (Date.now() < stopAt) {
          const candidates = [...keys.entries()].filter(([, l]) => l.acked.length > 0);
          if (candidates.length === 0) {
            await sleep(10);
            continue;
          }
          const [key, log] = candidates[Math.floor(Math.random() * candidates.length)]!;
          const sentAt = Date.now();
          const floor = Math.max(...log.acked.filter((a) => a.at < sentAt).map((a) => a.index), 0);
          const o = await call(base, token, 'GET', `/api/secrets/${key}`);
          outcomes.push({ kind: 'read', inst, o });
          expectAllowed(o, [200], `read ${key}`);
          if (o.status === 200) {
            const value = (JSON.parse(o.body) as { value: string }).value;
            const at = log.attempts.indexOf(value);
            // A value that was written, and not older than one acknowledged before the read.
            expect(at, `read of ${key}: a value never written`).toBeGreaterThanOrEqual(0);
            expect(at, `read of ${key}: older than an acknowledged write`).toBeGreaterThanOrEqual(floor);
          }
        }
      };

      const load = Promise.all([
        ...Array.from({ length: WRITERS_PER_INSTANCE * bases.length }, (_, w) => writer(w)),
        ...Array.from({ length: READERS_PER_INSTANCE * bases.length }, (_, r) => reader(r)),
      ]);
      await sleep(BEFORE_MS);

      // The crash: immediate shutdown cuts every client without a checkpoint.
      const killedAt = Date.now();
      await primary.stop('immediate');
      const stoppedAt = Date.now(); // pg_ctl returned: the postmaster is gone
      await sleep(DETECT_MS);
      const promoteAt = Date.now();
      await topo.promote(standby);
      const promotedAt = Date.now();

      // Keep the load on until every instance has written again, then a little longer.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const after = outcomes.filter((x) => x.kind === 'write' && x.o.t0 > promotedAt && x.o.status < 300);
        if (new Set(after.map((x) => x.inst)).size === bases.length) break;
        if (Date.now() > deadline)
          throw new Error('the service did not serve writes within 60 s of the promotion');
        await sleep(100);
      }
      await sleep(AFTER_MS);
      stopAt = Date.now();
      await load;

      // Every instance answers a write again (same processes: no restart).
      for (const [i, inst] of topo.instances.entries()) {
        expect(inst.child.exitCode, `instance ${i} exited`).toBeNull();
        const key = `FO_PROBE_${i}`;
        const probe = await call(inst.url, token, 'POST', '/api/secrets', { key, value: `probe-${i}` });
        expect(probe.status, `instance ${i} after fail-over`).toBe(201);
      }

      // No host could take a write between the old primary's end and the promotion: a write
      // acknowledged then would have gone to a standby (impossible) or a ghost of the old one.
      const ghost = outcomes.filter(
        (x) => x.kind === 'write' && x.o.status < 300 && x.o.t0 > stoppedAt && x.o.t1 < promoteAt,
      );
      expect(ghost.map((x) => x.o.body.slice(0, 100))).toEqual([]);
      const failed = outcomes.filter((x) => x.o.status !== 200 && x.o.status !== 201).map((x) => x.o);
      // The outage was seen (503s), and answered as such: the checks above saw nothing else.
      expect(failed.length).toBeGreaterThan(0);
      const firstFail = failed.reduce((m, o) => Math.min(m, o.t0), Number.POSITIVE_INFINITY);
      // No write can succeed between the old primary's end and the promotion (checked above),
      // so the first write sent after the end that succeeds marks the recovery.
      const firstOkAfter = outcomes
        .filter((x) => x.kind === 'write' && x.o.status < 300 && x.o.t0 >= stoppedAt)
        .reduce((m, x) => Math.min(m, x.o.t1), Number.POSITIVE_INFINITY);
      figures = {
        requests: outcomes.length,
        writesAcked: outcomes.filter((x) => x.kind === 'write' && x.o.status < 300).length,
        readsOk: outcomes.filter((x) => x.kind === 'read' && x.o.status === 200).length,
        unavailable503: failed.length,
        stopMs: stoppedAt - killedAt,
        killToPromoteMs: promoteAt - killedAt,
        promoteMs: promotedAt - promoteAt,
        // First failing request (sent) to the first write that succeeded after the outage (answered).
        firstFailureAfterKillMs: firstFail - killedAt,
        lastFailureAfterPromotionMs:
          failed.reduce((m, o) => Math.max(m, o.t1), Number.NEGATIVE_INFINITY) - promotedAt,
        unavailabilityWindowMs: Number.isFinite(firstFail) ? firstOkAfter - firstFail : 0,
        promotedToFirstWriteMs:
          outcomes
            .filter((x) => x.kind === 'write' && x.o.status < 300 && x.o.t0 >= promotedAt)
            .reduce((m, x) => Math.min(m, x.o.t1), Number.POSITIVE_INFINITY) - promotedAt,
      };
    }

    const newPrimary = topo.syncStandby!;
    // Every acknowledged write is on the new primary and decrypts to what was written:
    // read through the service (which decrypts), every acknowledged version by number.
    const c = new pg.Client({ connectionString: newPrimary.url('secrets') });
    await c.connect();
    let checked = 0;
    try {
      const base = topo.instances[0]!.url;
      for (const [key, log] of keys) {
        const { rows } = await c.query<{ version: number }>(
          'SELECT current_version AS version FROM secrets WHERE key = $1',
          [key],
        );
        expect(rows[0], `acknowledged create of ${key} is missing`).toBeDefined();
        const versions: string[] = [];
        for (let n = 1; n <= rows[0]!.version; n++) {
          const o = await call(base, token, 'GET', `/api/secrets/${key}?version=${n}`);
          expect(o.status, `${key} version ${n}`).toBe(200);
          versions.push((JSON.parse(o.body) as { value: string }).value);
        }
        const stored = new Set(versions);
        for (const a of log.acked) {
          expect(stored.has(log.attempts[a.index]!), `acknowledged write ${a.index} of ${key} lost`).toBe(
            true,
          );
          checked++;
        }
      }
    } finally {
      await c.end();
    }
    const storage = await expectStorageInvariants(newPrimary.url('secrets'));
    const verify = await call(topo.instances[1]!.url, token, 'GET', '/api/audit/verify', undefined, 30_000);
    expect(verify.status).toBe(200);
    expect(JSON.parse(verify.body).intact).toBe(true);
    const hygiene = scanLogs();
    report('failover', 'postgres-cluster', {
      ...figures,
      acknowledgedWritesChecked: checked,
      storage,
      long: LONG,
      logLines: hygiene.lines,
    });
    expect(checked).toBeGreaterThan(0);
  }, 600_000);
});
