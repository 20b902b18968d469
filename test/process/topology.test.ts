import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startTopology } from '../../scripts/topology.js';
import { capturedLogs } from '../helpers/secrets.js';
import { call } from '../reliability/cluster.js';
import { forbid } from '../reliability/hygiene.js';

/**
 * The topology script itself (scripts/topology.ts), every part on: the replicas stream
 * (one synchronous, one not), PgBouncer and the instance reach the primary, Redis answers;
 * promote() moves PgBouncer to the new primary; stop() leaves no process and no directory.
 * A process suite (its own clusters): runs once whatever TEST_BACKEND says.
 */

async function one<R extends pg.QueryResultRow>(url: string, text: string): Promise<R | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows[0];
  } finally {
    await c.end();
  }
}

const alive = (pid: number | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('scripts/topology.ts', () => {
  it('starts every part, promotes behind PgBouncer, and stops everything it started', async () => {
    const topo = await startTopology({ instances: 1, redis: 'own', onLog: (_i, l) => capturedLogs.push(l) });
    const pids: (number | undefined)[] = [];
    try {
      forbid(topo.env.ENCRYPTION_KEY ?? '');
      forbid(topo.env.JWT_SECRET ?? '');
      const token = forbid(topo.adminToken());
      const repl = await one<{ names: string }>(
        topo.urls.primary,
        `SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) AS names
         FROM pg_stat_replication WHERE state = 'streaming'`,
      );
      expect(repl?.names).toBe('async1:async,sync1:sync');
      expect(
        await one<{ s: string }>(
          topo.urls.primary,
          `SELECT current_setting('synchronous_standby_names') AS s`,
        ),
      ).toEqual({ s: 'sync1' });
      for (const url of [topo.urls.syncStandby!, topo.urls.asyncReplica!]) {
        expect((await one<{ r: boolean }>(url, 'SELECT pg_is_in_recovery() AS r'))?.r).toBe(true);
      }
      // The instance writes through the multi-host URL; the row reaches PgBouncer's view and
      // the asynchronous replica.
      expect(topo.env.DATABASE_URL).toBe(topo.urls.multiHost);
      const w = await call(topo.urls.instances[0]!, token, 'POST', '/api/secrets', {
        key: 'TOPO_A',
        value: 'x',
      });
      expect(w.status).toBe(201);
      expect(await one(topo.urls.pgbouncer!, `SELECT key FROM secrets WHERE key = 'TOPO_A'`)).toEqual({
        key: 'TOPO_A',
      });
      const redis = new Redis(topo.urls.redis!, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
      redis.disconnect();

      pids.push(topo.pgbouncer?.pid, topo.redis?.pid, ...topo.instances.map((i) => i.pid));
      expect(pids.every(alive)).toBe(true);

      // Fail-over: PgBouncer follows the promotion, the instance finds the new primary.
      await topo.primary.stop('immediate');
      await topo.promote();
      expect((await one<{ r: boolean }>(topo.urls.pgbouncer!, 'SELECT pg_is_in_recovery() AS r'))?.r).toBe(
        false,
      );
      let status = 0;
      for (let i = 0; i < 50 && status !== 201; i++) {
        const r = await call(topo.urls.instances[0]!, token, 'POST', '/api/secrets', {
          key: 'TOPO_B',
          value: 'y',
        });
        status = r.status;
        if (status !== 201) {
          expect(r.status).toBe(503);
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      expect(status).toBe(201);
      // The asynchronous replica follows the new primary's timeline (promote() repointed it).
      let follows = false;
      for (let i = 0; i < 100 && !follows; i++) {
        const r = await one<{ n: number }>(
          topo.urls.syncStandby!,
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'async1' AND state = 'streaming'`,
        );
        follows = r?.n === 1;
        if (!follows) await new Promise((res) => setTimeout(res, 200));
      }
      expect(follows, 'the asynchronous replica streams from the new primary').toBe(true);
    } finally {
      await topo.stop();
    }
    expect(pids.filter(alive)).toEqual([]);
    for (const c of [topo.primary, topo.syncStandby!, topo.asyncReplica!]) {
      expect(existsSync(c.dataDir), c.dataDir).toBe(false);
    }
    expect(existsSync(topo.dir)).toBe(false);
    // Nothing listens any more where the clusters were.
    const refused = await one(topo.urls.syncStandby!, 'SELECT 1').then(
      () => 'answered',
      (err: Error & { code?: string }) => err.code,
    );
    expect(refused).toBe('ECONNREFUSED');
  }, 240_000);
});
