import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForPort } from '../../scripts/topology.js';
import { buildApp } from '../../src/app.js';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { freePort, type PgCluster, startCluster } from '../helpers/pg-cluster.js';
import { capturedLogs, secretValue } from '../helpers/secrets.js';
import { type ServiceProcess, startService } from '../helpers/service-process.js';
import { call, type Outcome, serviceEnv } from '../reliability/cluster.js';

/**
 * The service through a real PgBouncer in transaction pooling mode (Debian's 1.18, which
 * cannot keep named prepared statements across transactions: each transaction may run on
 * another server connection). With DATABASE_PREPARED_STATEMENTS=false every route works;
 * left on, the service meets the mismatch, switches to unnamed statements with one warning
 * naming the setting, and still no request fails.
 * Starts its own PostgreSQL cluster and PgBouncer on free loopback ports (run once, like
 * the other process suites). PgBouncer must be installed (CI: apt-get install pgbouncer).
 * Last, three service processes share the one PgBouncer pool (two server connections).
 */

const PGBOUNCER = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p));

let cluster: PgCluster;
let bouncer: ChildProcess | undefined;
let bouncerPort = 0;
let dir = '';

beforeAll(async () => {
  if (!PGBOUNCER) {
    throw new Error(
      'PgBouncer is not installed: this test runs the service through a real PgBouncer 1.18 in transaction mode. Install it (Debian: apt-get install -y pgbouncer) and run again.',
    );
  }
  cluster = await startCluster();
  const admin = new pg.Client({ connectionString: cluster.url() });
  await admin.connect();
  await admin.query('CREATE DATABASE bouncer');
  await admin.end();

  dir = mkdtempSync(join(tmpdir(), 'pgbouncer-'));
  bouncerPort = await freePort();
  writeFileSync(join(dir, 'users.txt'), '"postgres" ""\n');
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    `[databases]
bouncer = host=127.0.0.1 port=${cluster.port} dbname=bouncer

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${bouncerPort}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, 'users.txt')}
pool_mode = transaction
; Fewer server connections than the app's pool: transactions certainly change connections.
default_pool_size = 2
max_client_conn = 200
logfile = ${join(dir, 'pgbouncer.log')}
ignore_startup_parameters = extra_float_digits
`,
  );
  // PgBouncer refuses to run as root.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  }
  bouncer = asRoot
    ? spawn('runuser', ['-u', 'postgres', '--', PGBOUNCER, join(dir, 'pgbouncer.ini')], { stdio: 'ignore' })
    : spawn(PGBOUNCER, [join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  await waitForPort(bouncerPort, 15_000, 'PgBouncer');
}, 120_000);

afterAll(async () => {
  if (bouncer?.pid && bouncer.exitCode === null) {
    const exited = new Promise((r) => bouncer?.once('exit', r));
    bouncer.kill('SIGTERM');
    await exited;
  }
  await cluster?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Booted {
  app: FastifyInstance;
  runtime: Runtime;
  auth: () => { authorization: string };
}

// One set of keys for both apps: the second boots on the first one's data (key canary).
const KEYS = {
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(48).toString('base64'),
};

const bouncerUrl = () => `postgres://postgres@127.0.0.1:${bouncerPort}/bouncer`;
/** The service's named statements (src/**: `{ name: '...' }` query options). */
const STATEMENT_NAMES = [
  'secret_by_key',
  'secret_by_key_locked',
  'secret_create',
  'secret_lock_with_version',
  'secret_versions_list',
  'secret_version',
  'secret_reveal',
  'audit_rows',
  'audit_batch',
  'audit_batch_checked',
];

async function boot(preparedStatements: boolean): Promise<Booted> {
  const config = loadConfig({
    NODE_ENV: 'test',
    ...KEYS,
    DATABASE_URL: bouncerUrl(),
    DATABASE_POOL_MAX: '10',
    DATABASE_PREPARED_STATEMENTS: String(preparedStatements),
    READ_RATE_LIMIT: '1000000',
    BULK_IN_FLIGHT_PER_CALLER: '1000',
    AUDIT_SEAL_INTERVAL_MS: '0',
  });
  const logger = createLogger(
    'info',
    new Writable({
      write(chunk, _enc, cb) {
        capturedLogs.push(chunk.toString());
        cb();
      },
    }),
  );
  const runtime = await openRuntime(config, logger);
  const app = await buildApp({ ...runtime, logger });
  await app.ready();
  const token = mintAdminToken(config, runtime.jwtSecret, { sub: 'bouncer', ttlSeconds: 600 });
  return { app, runtime, auth: () => ({ authorization: `Bearer ${token}` }) };
}

async function shutdown(b: Booted) {
  await b.app.close();
  await b.runtime.close();
}

describe('through PgBouncer 1.18 in transaction pooling mode', () => {
  it('with DATABASE_PREPARED_STATEMENTS=false every route works under concurrency', async () => {
    const b = await boot(false);
    try {
      const h = b.auth();
      const values = new Map<string, string>();
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const key = `BOUNCE_${i}`;
          const value = secretValue('bounce');
          values.set(key, value);
          const r = await b.app.inject({
            method: 'POST',
            url: '/api/secrets',
            headers: h,
            payload: { key, value },
          });
          expect(r.statusCode).toBe(201);
        }),
      );
      // Reads, writes, listings, versions, export and render interleaved: 160 requests.
      const calls = Array.from({ length: 160 }, (_, i) => {
        const key = `BOUNCE_${i % 10}`;
        switch (i % 8) {
          case 0:
            return b.app.inject({
              method: 'PUT',
              url: `/api/secrets/${key}`,
              headers: h,
              payload: { description: `d${i}` },
            });
          case 1:
            return b.app.inject({ method: 'GET', url: '/api/secrets?limit=5', headers: h });
          case 2:
            return b.app.inject({ method: 'GET', url: `/api/secrets/${key}/versions`, headers: h });
          case 3:
            return b.app.inject({ method: 'GET', url: '/api/secrets/export?prefix=BOUNCE_', headers: h });
          case 4:
            return b.app.inject({
              method: 'POST',
              url: '/api/secrets/render',
              headers: h,
              payload: { template: `{{Secrets.${key}}}` },
            });
          default:
            return b.app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers: h });
        }
      });
      const rs = await Promise.all(calls);
      const statuses = rs.map((r) => r.statusCode);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      for (const [i, r] of rs.entries()) {
        if (i % 8 >= 5) expect(r.json().value).toBe(values.get(`BOUNCE_${i % 10}`));
      }
      const reads = await b.runtime.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_log WHERE action = 'secret.read' AND outcome = 'success'`,
      );
      expect(reads[0]?.n).toBe(60);
      const verify = await b.app.inject({ method: 'GET', url: '/api/audit/verify', headers: h });
      expect(verify.statusCode).toBe(200);
      expect(verify.json().intact).toBe(true);
    } finally {
      await shutdown(b);
    }
  });

  it('with named prepared statements left on, the service notices, switches to unnamed statements and no request fails', async () => {
    // The mistake an operator easily makes: DATABASE_PREPARED_STATEMENTS left at its default
    // behind PgBouncer 1.18. The same load used to answer 500s (concurrent creates and updates)
    // and a read after a restart answered the audit trail's 503.
    const warnings = () =>
      capturedLogs.filter((l) => l.includes('named prepared statements do not survive')).length;
    const before = warnings();
    // Make the mismatch certain rather than left to which connection PgBouncer picks: two
    // transactions held open at once pin both of its server connections, and each prepares
    // the service's statement names there ("already exists" for the service's first Parse).
    const plant = Array.from({ length: 2 }, () => new pg.Client({ connectionString: bouncerUrl() }));
    await Promise.all(plant.map((c) => c.connect()));
    await Promise.all(plant.map((c) => c.query('BEGIN')));
    for (const c of plant) {
      for (const name of STATEMENT_NAMES) await c.query(`PREPARE ${name} AS SELECT 1`);
    }
    await Promise.all(plant.map((c) => c.query('COMMIT')));
    await Promise.all(plant.map((c) => c.end()));
    let b = await boot(true);
    try {
      let h = b.auth();
      // 50 concurrent creates of one key: one is created, the others are told it exists.
      const creates = await Promise.all(
        Array.from({ length: 50 }, () =>
          b.app.inject({
            method: 'POST',
            url: '/api/secrets',
            headers: h,
            payload: { key: 'BOUNCE_ONE', value: secretValue('bounce') },
          }),
        ),
      );
      const created = creates.map((r) => r.statusCode).sort();
      expect(created).toEqual([201, ...Array(49).fill(409)]);
      const more = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          b.app.inject({
            method: 'POST',
            url: '/api/secrets',
            headers: h,
            payload: { key: `LEFT_${i}`, value: secretValue('bounce') },
          }),
        ),
      );
      expect(more.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
      // Rounds of concurrent updates and reads, so named statements go out from several client
      // connections at once (concurrent reads alone would share one SELECT).
      const statuses: number[] = [];
      const last = new Map<string, string>();
      for (let round = 0; round < 5; round++) {
        const rs = await Promise.all(
          Array.from({ length: 40 }, (_, i) => {
            const key = `LEFT_${Math.floor(i / 2) % 10}`;
            if (i % 2) return b.app.inject({ method: 'GET', url: `/api/secrets/${key}`, headers: h });
            return b.app.inject({
              method: 'PUT',
              url: `/api/secrets/${key}`,
              headers: h,
              payload: { description: `round ${round}` },
            });
          }),
        );
        statuses.push(...rs.map((r) => r.statusCode));
        for (const [i, r] of rs.entries()) {
          if (i % 2) last.set(`LEFT_${Math.floor(i / 2) % 10}`, r.json().value);
        }
      }
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(statuses).toHaveLength(200);
      expect(last.size).toBe(10);
      // Restarted: the new process's first statements meet the ones the old one left prepared
      // on PgBouncer's server connections ("already exists").
      await shutdown(b);
      b = await boot(true);
      h = b.auth();
      const reads = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          b.app.inject({ method: 'GET', url: `/api/secrets/LEFT_${i % 10}`, headers: h }),
        ),
      );
      expect(reads.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
      expect(reads.map((r) => r.json().value)).toEqual(
        Array.from({ length: 20 }, (_, i) => last.get(`LEFT_${i % 10}`)),
      );
      // Each process said so once (however many requests met it), naming the setting.
      expect(warnings() - before).toBe(2);
      expect(capturedLogs.join('')).toContain('DATABASE_PREPARED_STATEMENTS=false');
      const verify = await b.app.inject({ method: 'GET', url: '/api/audit/verify', headers: h });
      expect(verify.json().intact).toBe(true);
    } finally {
      await shutdown(b);
    }
  });

  it('environments: created, written and read apart under concurrency, with and without named statements', async () => {
    for (const prepared of [false, true]) {
      const b = await boot(prepared);
      try {
        const h = b.auth();
        const env = `bounce-${prepared}`;
        const inject = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) =>
          b.app.inject({ method, url, headers: h, ...(payload ? { payload } : {}) });
        expect((await inject('POST', '/api/environments', { name: env })).statusCode).toBe(201);
        const base = { default: '/api/secrets', named: `/api/environments/${env}/secrets` };
        const values = new Map<string, string>();
        // The same keys in both environments, created side by side.
        const creates = await Promise.all(
          Array.from({ length: 10 }, (_, i) => {
            const where = i % 2 === 0 ? 'default' : 'named';
            const key = `ENV_BOUNCE_${prepared ? 'N' : 'U'}_${i >> 1}`;
            const value = secretValue('bounce-env');
            values.set(`${where} ${key}`, value);
            return inject('POST', base[where], { key, value });
          }),
        );
        expect(creates.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
        const reads = await Promise.all(
          Array.from({ length: 60 }, (_, i) => {
            const where = i % 2 === 0 ? 'default' : 'named';
            const key = `ENV_BOUNCE_${prepared ? 'N' : 'U'}_${i % 5}`;
            return i % 6 === 1
              ? inject('PUT', `${base[where]}/${key}`, { description: `d${i}` })
              : inject('GET', `${base[where]}/${key}`);
          }),
        );
        expect(reads.filter((r) => r.statusCode !== 200).map((r) => `${r.statusCode} ${r.body}`)).toEqual([]);
        for (const [i, r] of reads.entries()) {
          if (i % 6 === 1) continue;
          const where = i % 2 === 0 ? 'default' : 'named';
          expect(r.json().value).toBe(values.get(`${where} ENV_BOUNCE_${prepared ? 'N' : 'U'}_${i % 5}`));
        }
        const audit = await inject('GET', `/api/audit?environment=${env}&action=secret.create`);
        expect(audit.json().entries).toHaveLength(5);
        const verify = await inject('GET', '/api/audit/verify');
        expect(verify.json().intact).toBe(true);
      } finally {
        await shutdown(b);
      }
    }
  });

  it('three service processes share one PgBouncer pool (two server connections) without an error', async () => {
    // The same keys as the apps above (the database's key canary was written with them).
    const { env } = serviceEnv(`postgres://postgres@127.0.0.1:${bouncerPort}/bouncer`);
    Object.assign(env, KEYS);
    const token = mintAdminToken(loadConfig({ ...env, NODE_ENV: 'test' }), KEYS.JWT_SECRET, {
      sub: 'shared',
      ttlSeconds: 600,
    });
    const svcs: ServiceProcess[] = [];
    // A request waits at most 2 s for one of its process's pooled connections (src/db/postgres.ts)
    // before it answers 503: that is the service shedding load on a busy machine, not what this
    // test is about. So each process gets at most LANE requests at a time, fewer than its pool
    // (DATABASE_POOL_MAX 10), and the waiting
    // happens in PgBouncer's queue for its two server connections, which has no clock; the
    // three processes still interleave their transactions on those two. The client's own
    // timeout only guards against a hang.
    const LANE = 5;
    const TIMEOUT_MS = 30_000;
    try {
      const extra = { DATABASE_PREPARED_STATEMENTS: 'false', AUDIT_SEAL_INTERVAL_MS: '0' };
      // Started side by side (the migrator's advisory lock orders any migration): one after
      // another, three start-ups add up on a loaded machine.
      const started = await Promise.allSettled(
        Array.from({ length: 3 }, () => startService({ ...env, ...extra })),
      );
      for (const s of started) if (s.status === 'fulfilled') svcs.push(s.value);
      for (const s of started) if (s.status === 'rejected') throw s.reason;
      /** Sends `count` requests, request i to instance `at(i)`, at most LANE in flight per instance. */
      const send = async (
        count: number,
        at: (i: number) => number,
        req: (i: number, base: string) => Promise<Outcome>,
      ) => {
        const out: Outcome[] = new Array(count);
        await Promise.all(
          svcs.map(async (svc, s) => {
            const mine = Array.from({ length: count }, (_, i) => i).filter((i) => at(i) === s);
            await Promise.all(
              Array.from({ length: LANE }, async () => {
                for (let i = mine.shift(); i !== undefined; i = mine.shift()) out[i] = await req(i, svc.url);
              }),
            );
          }),
        );
        return out;
      };
      const values = new Map<string, string>();
      // Each instance creates keys; every instance then reads and updates all of them at once.
      const creates = await send(
        12,
        (i) => i % 3,
        (i, base) => {
          const key = `SHARED_${i}`;
          const value = secretValue('shared');
          values.set(key, value);
          return call(base, token, 'POST', '/api/secrets', { key, value }, TIMEOUT_MS);
        },
      );
      expect(creates.map((r) => r.status)).toEqual(Array(12).fill(201));
      const mixed = await send(
        150,
        (i) => (i + 1) % 3,
        (i, base) => {
          const key = `SHARED_${i % 12}`;
          return i % 5 === 0
            ? call(base, token, 'PUT', `/api/secrets/${key}`, { description: `d${i}` }, TIMEOUT_MS)
            : i % 5 === 1
              ? call(base, token, 'GET', '/api/secrets?limit=20', undefined, TIMEOUT_MS)
              : call(base, token, 'GET', `/api/secrets/${key}`, undefined, TIMEOUT_MS);
        },
      );
      expect(mixed.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body.slice(0, 80)}`)).toEqual(
        [],
      );
      for (const [i, r] of mixed.entries()) {
        if (i % 5 >= 2) expect(JSON.parse(r.body).value).toBe(values.get(`SHARED_${i % 12}`));
      }
      const verify = await call(svcs[2]!.url, token, 'GET', '/api/audit/verify', undefined, 30_000);
      expect(verify.status).toBe(200);
      expect(JSON.parse(verify.body).intact).toBe(true);
    } finally {
      await Promise.all(svcs.map((s) => s.kill('SIGTERM')));
    }
  });
});
