import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { expect, it, vi } from 'vitest';
import { sealValue } from '../../src/crypto/envelope.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { backend, createTestApp, type TestApp, testDatabaseUrl } from '../helpers/app.js';
import { distEntry } from '../helpers/cli.js';
import { appsOverSameData, ringEnv } from '../helpers/same-data.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Key rotation end to end: rows written under kid A, the ring gains B as active, the
 * rewrap moves every data key to B while clients keep reading and writing. Each test
 * builds apps one after another over the same data (a PGlite directory or a PostgreSQL
 * schema), as an operator restarting with a new ENCRYPTION_KEYS would.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KA = randomBytes(32).toString('base64');
const KB = randomBytes(32).toString('base64');
const RING_A = `A:${KA}`;
const RING_AB = `A:${KA},B:${KB}`;
const RING_B = `B:${KB}`;

// On disk: a test hands the data to a rewrap process it kills.
const { appWith, closeApp, closeAfter, call, data } = appsOverSameData('rotation', { onDisk: true });

/**
 * N secrets under ring A, every third with a second version. Returns key -> [v1, current].
 * Two batch imports (the same sealing door as single writes), not one request per version:
 * the test's cost stays in the rewrap it checks, not in setting it up, on a loaded machine too.
 */
async function seed(n: number): Promise<Map<string, string[]>> {
  const a = await appWith(RING_A);
  const expected = new Map<string, string[]>();
  const firsts: { key: string; value: string }[] = [];
  const seconds: { key: string; value: string }[] = [];
  for (let i = 0; i < n; i++) {
    const key = `ROT_${i}`;
    const v1 = secretValue('rot');
    firsts.push({ key, value: v1 });
    expected.set(key, [v1, v1]);
    if (i % 3 === 0) {
      const v2 = secretValue('rot2');
      seconds.push({ key, value: v2 });
      expected.set(key, [v1, v2]);
    }
  }
  for (const secrets of [firsts, seconds]) {
    expect((await call(a, 'POST', '/api/secrets/batch', { secrets })).statusCode).toBe(200);
  }
  await closeApp(a);
  return expected;
}

/** Current values in one export; version 1 read on its own where it is not the current one. */
async function expectAllReadable(a: TestApp, expected: Map<string, string[]>) {
  const exported = await call(a, 'GET', '/api/secrets/export?format=json');
  expect(exported.statusCode).toBe(200);
  const current = exported.json() as Record<string, string>;
  for (const [key, [v1, now]] of expected) {
    expect(current[key]).toBe(now);
    if (v1 !== now) expect((await call(a, 'GET', `/api/secrets/${key}?version=1`)).json().value).toBe(v1);
  }
}

it('rewrap under concurrent reads and writes: zero failed requests, every row ends under B, values unchanged', async () => {
  const expected = await seed(90);

  // Removing kid A while rows use it is refused at start-up, with a message saying what to do.
  await expect(appWith(RING_B)).rejects.toThrow(/Stored values still use key id\(s\) "A".*rewrap/);

  const a = await appWith(RING_AB);
  const before = (await call(a, 'GET', '/api/keys/status')).json();
  expect(before.activeKid).toBe('B');
  expect(before.kids).toEqual([
    { kid: 'A', rows: 120, active: false, inKeyring: true },
    { kid: 'B', rows: 0, active: true, inKeyring: true },
  ]);
  expect(before.pendingRewrap).toBe(120);

  let done = false;
  const failures: string[] = [];
  let ops = 0;
  const keys = [...expected.keys()];
  const client = async (worker: number) => {
    for (let i = 0; !done; i++) {
      const key = keys[(i * 7 + worker * 31) % keys.length]!;
      const [v1, current] = expected.get(key)!;
      if (i % 4 === 0) {
        const value = secretValue('w');
        const r = await call(a, 'PUT', `/api/secrets/${key}`, { value });
        if (r.statusCode !== 200) failures.push(`PUT ${key}: ${r.statusCode}`);
        else expected.set(key, [v1!, value]);
      } else {
        const r = await call(a, 'GET', `/api/secrets/${key}${i % 2 ? '?version=1' : ''}`);
        const want = i % 2 ? v1 : current;
        if (r.statusCode !== 200 || r.json().value !== want) failures.push(`GET ${key}: ${r.statusCode}`);
      }
      ops++;
    }
  };
  const clients = [client(0), client(1), client(2)];
  const rewrap = await call(a, 'POST', '/api/keys/rewrap', { batchSize: 10 });
  const opsDuringRewrap = ops;
  done = true;
  await Promise.all(clients);

  expect(rewrap.statusCode).toBe(200);
  expect(rewrap.json()).toMatchObject({ activeKid: 'B', rewrapped: 120, failed: 0, remaining: 0 });
  expect(rewrap.json().batches).toBeGreaterThanOrEqual(12);
  expect(failures).toEqual([]);
  expect(opsDuringRewrap).toBeGreaterThan(0);
  // Issue 10: the rewrap names every secret it touched in the audit log (a row per secret
  // per batch; a secret whose versions span two batches is named in both).
  const rotated = await a.db.query<{ key: string }>(
    `SELECT DISTINCT key FROM audit_log WHERE action = 'secret.rotate' AND outcome = 'success'`,
  );
  expect(rotated.map((r) => r.key).sort()).toEqual(keys.slice().sort());

  const after = (await call(a, 'GET', '/api/keys/status')).json();
  expect(after.kids.find((k: { kid: string }) => k.kid === 'A').rows).toBe(0);
  expect(after.pendingRewrap).toBe(0);
  // Only the data keys moved: the value ciphertext of version 1 rows is what A wrote.
  await expectAllReadable(a, expected);
  // Running it again finds nothing to do.
  expect((await call(a, 'POST', '/api/keys/rewrap')).json()).toMatchObject({ rewrapped: 0, remaining: 0 });
  await closeApp(a);

  // Kid A can now leave the ring; everything reads with B alone.
  const b = await appWith(RING_B);
  await expectAllReadable(b, expected);
}, 90_000);

it('a rewrap killed midway (SIGKILL) leaves every value readable, and a second run finishes the job', async () => {
  // 20 rows (every third secret has two versions) in batches of 5: enough for a killed run
  // to leave rows under both kids and for the second run to need several batches.
  const expected = await seed(15);
  const env: Record<string, string> = {
    ...process.env,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    ENCRYPTION_KEYS: RING_AB,
    JWT_SECRET: randomBytes(48).toString('base64'),
    ...(data().schema
      ? {
          DATABASE_URL: `${testDatabaseUrl}?options=${encodeURIComponent(`-c search_path=${data().schema}`)}`,
        }
      : { DATA_DIR: data().dataDir!, DATABASE_URL: '' }),
  } as Record<string, string>;
  delete env.ENCRYPTION_KEY;
  const run = (args: string[], killAfterBatch?: number) =>
    new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [distEntry('cli/rewrap'), ...args], {
        cwd: ROOT,
        env,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
        if (killAfterBatch && stderr.includes(`batch ${killAfterBatch},`)) child.kill('SIGKILL');
      });
      child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });

  // Killed on its report of the first batch, while it sleeps before the second: the pause is
  // the longest the command allows (60 s), so the kill lands in it however slowly this process
  // reads the line on a loaded machine, and exactly one batch is committed.
  const killed = await run(['--batch-size', '5', '--pause-ms', '60000'], 1);
  expect(killed.signal).toBe('SIGKILL');
  expect(killed.stdout).toBe('');
  expect(killed.stderr).toContain('batch 1, 5 rows moved to B');

  // The state the kill left must read back whole. On PostgreSQL an app checks it before the
  // second run. On PGlite the second run starts at once and waits out the killed process's
  // DATA_DIR lock itself (a crashed holder's lock goes stale within 10 s, src/db/data-dir-lock.ts:
  // waited for, never refused), while an app checks a copy of the directory as the kill left
  // it: the lock wait and the second process's start-up overlap the check instead of
  // following it, and on a loaded machine each takes many seconds.
  const { dataDir, schema } = data();
  let rerunning: ReturnType<typeof run> | undefined;
  let checkDir: string | undefined;
  if (dataDir) {
    checkDir = await mkdtemp(join(tmpdir(), 'rotation-killed-'));
    await cp(join(dataDir, 'pglite'), join(checkDir, 'pglite'), { recursive: true });
    rerunning = run(['--batch-size', '5']);
  }
  try {
    const mid = closeAfter(
      await createTestApp({
        env: ringEnv(RING_AB),
        ...(schema ? { schema } : {}),
        ...(checkDir ? { dataDir: checkDir } : {}),
      }),
    );
    const status = (await call(mid, 'GET', '/api/keys/status')).json();
    const rowsOf = (kid: string) => status.kids.find((k: { kid: string }) => k.kid === kid).rows;
    expect(rowsOf('B')).toBe(5);
    expect(rowsOf('A')).toBe(15);
    await expectAllReadable(mid, expected);
    await closeApp(mid);
  } finally {
    // Awaited whatever the check found: no process outlives the test.
    if (rerunning) await rerunning;
    if (checkDir) await rm(checkDir, { recursive: true, force: true });
  }

  const rerun = await (rerunning ?? run(['--batch-size', '5']));
  expect(rerun.code, rerun.stderr).toBe(0);
  const result = JSON.parse(rerun.stdout);
  expect(result).toMatchObject({ activeKid: 'B', failed: 0, remaining: 0, rewrapped: 15 });
  expect(result.batches).toBeGreaterThanOrEqual(3);

  const b = await appWith(RING_B);
  const final = (await call(b, 'GET', '/api/keys/status')).json();
  // A has left the ring and holds no rows: only B remains to report.
  expect(final.kids).toEqual([{ kid: 'B', rows: 20, active: true, inKeyring: true }]);
  await expectAllReadable(b, expected);
}, 90_000);

it('a write-only secret is rewrapped like any other: rows under B, still write-only, reveal 403, export to secrets:inject unchanged', async () => {
  const v1 = secretValue('wo1');
  const v2 = secretValue('wo2');
  const a = await appWith(RING_A);
  expect(
    (await call(a, 'POST', '/api/secrets', { key: 'ROT_WO', value: v1, isWriteOnly: true })).statusCode,
  ).toBe(201);
  expect((await call(a, 'PUT', '/api/secrets/ROT_WO', { value: v2 })).statusCode).toBe(200);
  await closeApp(a);

  const kidsOf = async (t: TestApp) =>
    (
      await t.db.query<{ version: number; kid: string }>(
        `SELECT v.version, v.kid FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
         WHERE s.key = 'ROT_WO' ORDER BY v.version`,
      )
    ).map((r) => `${r.version}:${r.kid}`);
  const expectWriteOnly = async (t: TestApp) => {
    const meta = await call(t, 'GET', '/api/secrets?prefix=ROT_WO');
    expect(meta.json().secrets).toMatchObject([{ key: 'ROT_WO', isWriteOnly: true }]);
    const flag = await t.db.query<{ write_only: boolean }>(
      `SELECT write_only FROM secrets WHERE key = 'ROT_WO'`,
    );
    expect(flag).toEqual([{ write_only: true }]);
    for (const url of ['/api/secrets/ROT_WO', '/api/secrets/ROT_WO?version=1']) {
      const reveal = await call(t, 'GET', url);
      expect(reveal.statusCode, url).toBe(403);
      expect(reveal.json().error).toBe('FORBIDDEN');
      expect(reveal.body).not.toContain(v1);
      expect(reveal.body).not.toContain(v2);
    }
  };
  const exported = async (t: TestApp, token: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/export?format=json&prefix=ROT_WO',
      headers: bearer(token),
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  const b = await appWith(RING_AB);
  expect(await kidsOf(b)).toEqual(['1:A', '2:A']);
  const injector = await createAccessKey(b, { scopes: ['secrets:read', 'secrets:inject'] });
  expect(await exported(b, injector.token)).toEqual({ ROT_WO: v2 });

  const rewrap = await call(b, 'POST', '/api/keys/rewrap');
  expect(rewrap.statusCode).toBe(200);
  expect(rewrap.json()).toMatchObject({ activeKid: 'B', rewrapped: 2, failed: 0, remaining: 0 });
  expect(await kidsOf(b)).toEqual(['1:B', '2:B']);
  await expectWriteOnly(b);
  expect(await exported(b, injector.token)).toEqual({ ROT_WO: v2 });
  // The rewrap's audit row names the secret and carries no value.
  const rotated = await b.db.query<{ key: string; outcome: string }>(
    `SELECT key, outcome FROM audit_log WHERE action = 'secret.rotate'`,
  );
  expect(rotated).toEqual([{ key: 'ROT_WO', outcome: 'success' }]);
  // And one change event (both versions were rewrapped in one batch), naming that row and its version.
  const events = await b.db.query<{ type: string; key: string; version: number; action: string }>(
    `SELECT e.type, e.key, e.version, a.action FROM change_events e JOIN audit_log a ON a.id = e.audit_id
     WHERE e.type = 'secret.rewrapped'`,
  );
  expect(events).toEqual([{ type: 'secret.rewrapped', key: 'ROT_WO', version: 1, action: 'secret.rotate' }]);
  const auditText = JSON.stringify(await b.db.query('SELECT * FROM audit_log'));
  expect(auditText).not.toContain(v1);
  expect(auditText).not.toContain(v2);
  await closeApp(b);

  // Kid A has left the ring: the same key still receives the same value, and only that way.
  const c = await appWith(RING_B);
  await expectWriteOnly(c);
  expect(await exported(c, injector.token)).toEqual({ ROT_WO: v2 });
}, 90_000);

it('bad rewrap requests are 400 and change nothing', async () => {
  await seed(2);
  const a = await appWith(RING_AB);
  for (const body of [{ batchSize: 0 }, { batchSize: 1.5 }, { batchSize: 'x' }, { nope: 1 }, [1]]) {
    const r = await a.app.inject({
      method: 'POST',
      url: '/api/keys/rewrap',
      headers: a.auth(),
      payload: body,
    });
    expect(r.statusCode, JSON.stringify(body)).toBe(400);
  }
  expect((await call(a, 'GET', '/api/keys/status')).json().pendingRewrap).toBe(3);
  const noAuth = await a.app.inject({ method: 'GET', url: '/api/keys/status' });
  expect(noAuth.statusCode).toBe(401);
}, 90_000);

it('the server keeps answering while a rewrap runs in it (embedded PGlite resolves without I/O)', async () => {
  // One in-memory app whose ring has A active and B too; rows are sealed under B directly,
  // so the rewrap (to A) has work without reopening the database.
  const a = closeAfter(await createTestApp({ env: { ...ringEnv(RING_AB), ENCRYPTION_ACTIVE_KID: 'A' } }));
  const ringB = createKeyring(new Map([['B', a.keyring.get('B')!]]), 'B');
  const value = secretValue('busy');
  const ids = Array.from({ length: 600 }, () => randomUUID());
  for (const [i, id] of ids.entries()) {
    const key = `BUSY_${i}`;
    const s = sealValue(ringB, { secretId: id, key, version: 1 }, value);
    await a.db.query(
      `WITH s AS (INSERT INTO secrets (id, key, current_version) VALUES ($1, $2, 1) RETURNING id)
       INSERT INTO secret_versions (secret_id, version, format, kid, wrapped_dek, dek_iv, dek_tag, iv, tag, ciphertext)
       SELECT id, 1, $3, $4, $5, $6, $7, $8, $9, $10 FROM s`,
      [id, key, s.format, s.kid, s.wrappedDek, s.dekIv, s.dekTag, s.iv, s.tag, s.ciphertext],
    );
  }
  let running = true;
  let servedDuringRewrap = 0;
  // What happened, in order: each batch's read ('batch') and each turn of the event loop
  // ('tick', from a setImmediate loop). Counted, not timed.
  const events: string[] = [];
  let enoughReads: () => void = () => {};
  const readsDone = new Promise<void>((resolve) => {
    enoughReads = resolve;
  });
  const query = a.db.query.bind(a.db);
  const spy = vi.spyOn(a.db, 'query').mockImplementation(async (sql, params) => {
    if (sql.includes('WHERE v.kid <> $1')) {
      events.push('batch');
      // The second batch waits until the reader has been served six times: reads are
      // answered between batches, whatever the machine's speed.
      if (events.filter((e) => e === 'batch').length === 2) await readsDone;
    }
    return query(sql, params);
  });
  const reader = (async () => {
    while (running) {
      const r = await call(a, 'GET', '/api/secrets/BUSY_7');
      expect(r.json().value).toBe(value);
      if (running) servedDuringRewrap++;
      if (servedDuringRewrap > 5) enoughReads();
      await setImmediate();
    }
  })();
  const ticker = (async () => {
    while (running) {
      events.push('tick');
      await setImmediate();
    }
  })();
  try {
    const r = await call(a, 'POST', '/api/keys/rewrap', { batchSize: 20 });
    running = false;
    await reader;
    await ticker;
    expect(r.json()).toMatchObject({ activeKid: 'A', rewrapped: 600, remaining: 0, batches: 30 });
  } finally {
    running = false;
    enoughReads();
    spy.mockRestore();
  }
  // Before the rewrap yielded between batches, the reader's first request waited for the end.
  expect(servedDuringRewrap).toBeGreaterThan(5);
  // And it yields between every two batches: the event loop turned at least once between
  // each batch's read and the next (30 batches, then the empty reads that end each pass;
  // a pass that found nothing ends without a yield).
  const batchAt = events.flatMap((e, i) => (e === 'batch' ? [i] : []));
  expect(batchAt.length).toBeGreaterThanOrEqual(31);
  for (let b = 1; b <= 30; b++) {
    expect(events.slice(batchAt[b - 1]! + 1, batchAt[b]), `between batch ${b} and ${b + 1}`).toContain(
      'tick',
    );
  }
}, 90_000);

// A second session holding a row lock needs several connections: PostgreSQL only (PGlite
// runs one statement at a time, so there the question does not arise).
if (backend === 'postgres') {
  it('rewrap skips a row locked by another transaction instead of waiting; the next run moves it', async () => {
    const expected = await seed(3); // 4 rows: ROT_0 has two versions
    const a = await appWith(RING_AB);
    const other = new pg.Client({
      connectionString: testDatabaseUrl,
      options: `-c search_path=${data().schema}`,
    });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `SELECT 1 FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
         WHERE s.key = 'ROT_0' AND v.version = 1 FOR UPDATE OF v`,
      );
      const first = await call(a, 'POST', '/api/keys/rewrap');
      expect(first.json()).toMatchObject({ rewrapped: 3, remaining: 1, failed: 0 });
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
    expect((await call(a, 'POST', '/api/keys/rewrap')).json()).toMatchObject({ rewrapped: 1, remaining: 0 });
    await expectAllReadable(a, expected);
  });
}
