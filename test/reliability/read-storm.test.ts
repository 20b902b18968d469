import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgCluster, startCluster } from '../helpers/pg-cluster.js';
import { secretValue } from '../helpers/secrets.js';
import { type ServiceProcess, startService } from '../helpers/service-process.js';
import { call, type Outcome, runFor, serviceEnv, sleep } from './cluster.js';
import { scanLogs } from './hygiene.js';

/**
 * Issue 10's guarantee under faults, with reads group-committed: a value never leaves the
 * service before its audit row is committed. Each read carries its own X-Request-Id, so
 * every 200 a client received can be matched to its row.
 * - SIGKILL the service in the middle of a read storm: every value received has its row.
 * - Stop PostgreSQL in the middle of a read storm: waiting reads get 503 and no value (no
 *   500, no hang), every value received has its row, and the service recovers on its own.
 * Starts its own PostgreSQL cluster and the service as a child process (run once).
 */

const KEYS = 4;
let cluster: PgCluster;
let svc: ServiceProcess | undefined;
let env: Record<string, string>;
let token: string;

beforeAll(async () => {
  cluster = await startCluster();
  ({ env, token } = serviceEnv(cluster.url()));
  // A wider window than the default makes batches of many waiting reads, the case to test.
  env = { ...env, AUDIT_BATCH_WINDOW_MS: '5' };
}, 120_000);
afterAll(async () => {
  await svc?.kill('SIGKILL');
  await cluster?.destroy();
});

interface Read extends Outcome {
  id: string;
}

/** Readers hammering KEYS secrets, each request with its own id, until stop() resolves. */
function storm(base: string, tag: string, workers: number) {
  const reads: Read[] = [];
  let running = true;
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      const id = `${tag}-${w}-${i}`;
      const r = await call(base, token, 'GET', `/api/secrets/STORM_${i % KEYS}`, undefined, 5_000, {
        'x-request-id': id,
      });
      reads.push({ ...r, id });
      if (r.error) await sleep(20);
    }
  };
  const all = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    reads,
    async stop() {
      running = false;
      await all;
      return reads;
    },
  };
}

/** Request ids that have a committed success read row. */
async function recordedIds(prefix: string): Promise<Set<string>> {
  const c = new pg.Client({ connectionString: cluster.url() });
  await c.connect();
  try {
    const r = await c.query<{ request_id: string }>(
      `SELECT request_id FROM audit_log WHERE action = 'secret.read' AND outcome = 'success'
       AND starts_with(request_id, $1) AND client_request_id`,
      [prefix],
    );
    return new Set(r.rows.map((x) => x.request_id));
  } finally {
    await c.end();
  }
}

async function seedKeys(base: string) {
  for (let k = 0; k < KEYS; k++) {
    const r = await call(base, token, 'POST', '/api/secrets', {
      key: `STORM_${k}`,
      value: secretValue('storm'),
    });
    expect([201, 409]).toContain(r.status);
  }
}

describe('read storms and faults', () => {
  it('SIGKILL during a read storm: every value a client received has its audit row', async () => {
    let received = 0;
    for (let round = 0; round < 2; round++) {
      svc = await startService(env);
      if (round === 0) await seedKeys(svc.url);
      const s = storm(svc.url, `kill${round}`, 8);
      // 1.5 s at least, and until more than 10 reads succeeded (checked below).
      await runFor(1_500, () => s.reads.filter((r) => r.status === 200).length > 10, 'reads before the kill');
      await svc.kill('SIGKILL');
      svc = undefined;
      const reads = await s.stop();
      const ok = reads.filter((r) => r.status === 200);
      expect(ok.length, 'no read succeeded before the kill').toBeGreaterThan(10);
      for (const r of ok) expect(JSON.parse(r.body).value).toMatch(/^sv_storm_/);
      const rows = await recordedIds(`kill${round}-`);
      expect(
        ok.filter((r) => !rows.has(r.id)).map((r) => r.id),
        'values returned without a row',
      ).toEqual([]);
      received += ok.length;
    }
    // The restarted service serves again.
    svc = await startService(env);
    expect((await call(svc.url, token, 'GET', '/api/secrets/STORM_0')).status).toBe(200);
    await svc.kill('SIGTERM');
    svc = undefined;
    expect(received).toBeGreaterThan(20);
  }, 180_000);

  it('PostgreSQL stopped during a read storm: 503 and no value while down, rows for every value, recovery', async () => {
    svc = await startService(env);
    const base = svc.url;
    const s = storm(base, 'stop', 8);
    await sleep(1_000);
    await cluster.stop('immediate');
    const down = Date.now();
    // 2 s at least, and until more than 10 reads sent after the stop have been answered.
    await runFor(2_000, () => s.reads.filter((r) => r.t0 >= down).length > 10, 'answers while down');
    const up = Date.now();
    await cluster.start();
    let recovered = false;
    for (let i = 0; i < 300 && !recovered; i++) {
      recovered = (await call(base, token, 'GET', '/api/secrets/STORM_1')).status === 200;
      if (!recovered) await sleep(100);
    }
    expect(recovered, 'the service did not recover after PostgreSQL came back').toBe(true);
    await sleep(300);
    const reads = await s.stop();

    // Only 200 or 503 over the whole storm: no 500, no transport failure, no hang.
    expect(reads.filter((r) => r.error).map((r) => r.error)).toEqual([]);
    for (const r of reads) expect([200, 503], r.body).toContain(r.status);
    const during = reads.filter((r) => r.t0 >= down && r.t1 <= up);
    expect(during.length).toBeGreaterThan(10);
    for (const r of during) {
      expect(r.status).toBe(503);
      expect(r.body).not.toContain('sv_storm_');
    }
    for (const r of reads.filter((x) => x.status === 503)) expect(r.body).not.toContain('sv_storm_');
    const ok = reads.filter((r) => r.status === 200);
    const rows = await recordedIds('stop-');
    expect(
      ok.filter((r) => !rows.has(r.id)).map((r) => r.id),
      'values returned without a row',
    ).toEqual([]);
    expect(svc.child.exitCode, 'the service process exited').toBeNull();
    await svc.kill('SIGTERM');
    svc = undefined;
    scanLogs();
  }, 180_000);
});
