import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { dropSchema, newSchema, testDatabaseUrl } from '../helpers/app.js';
import { secretValue } from '../helpers/secrets.js';
import { type ServiceProcess, startService } from '../helpers/service-process.js';
import { type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * SIGKILL of the service while webhook deliveries are in flight loses no event: the
 * receiver (verifying every signature with the official `standardwebhooks` package) holds
 * its answers, the service is killed with requests open, and after a restart on the same
 * data every event arrives, each webhook-id once after deduplication, in order per key.
 * The claims the killed process held are taken again once their lease runs out
 * (2 x WEBHOOK_TIMEOUT_MS + 10 s). A held request may also time out and be retried before
 * the kill: the receiver deduplicates on webhook-id, as the docs tell receivers to. PostgreSQL (a schema of its own on the test server)
 * and embedded PGlite with a data directory.
 */

const KEYS = 4;
const VERSIONS = 6;

const cleanups: [string, () => Promise<unknown>][] = [];
/**
 * Each clean-up step is bounded, and one that does not finish is named in the failure, so a
 * hang says where it is instead of timing the whole hook out.
 */
afterEach(async () => {
  const stuck: string[] = [];
  for (const [what, c] of cleanups.splice(0).reverse()) {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'stuck'>((resolve) => {
      timer = setTimeout(() => resolve('stuck'), 20_000);
    });
    const out = await Promise.race([c().catch(() => undefined), bound]);
    clearTimeout(timer);
    if (out === 'stuck') stuck.push(what);
  }
  expect(stuck, 'clean-up steps that did not finish within 20 s').toEqual([]);
});

function env(storage: Record<string, string>) {
  const keys = {
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: randomBytes(48).toString('base64'),
  };
  const token = mintAdminToken(loadConfig({ ...keys, ...storage, NODE_ENV: 'test' }), keys.JWT_SECRET, {
    sub: 'webhook-kill',
    ttlSeconds: 3600,
  });
  return {
    token,
    env: {
      ...keys,
      ...storage,
      AUDIT_SEAL_INTERVAL_MS: '0',
      WEBHOOK_ALLOW_HTTP: 'true',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '50',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_RETRY_BASE_MS: '50',
      WEBHOOK_RETRY_MAX_MS: '200',
    },
  };
}

async function call(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as Record<string, unknown> };
}

async function until(what: string, ok: () => boolean, ms = 90_000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function killMidDelivery(storage: Record<string, string>) {
  const receiver: Receiver = await startReceiver();
  cleanups.push(['close the receiver', () => receiver.close()]);
  const { env: vars, token } = env(storage);
  let svc: ServiceProcess = await startService(vars);
  cleanups.push(['kill the service', () => svc.kill('SIGKILL')]);

  const sub = await call(svc.url, token, 'POST', '/api/webhooks', { url: receiver.url });
  expect(sub.status).toBe(201);
  receiver.secrets.push(String(sub.json.secret));

  // Answers are held: the first deliveries stay in flight.
  receiver.mode = 'hold';
  for (let v = 1; v <= VERSIONS; v++)
    for (let k = 0; k < KEYS; k++) {
      const key = `APP_KILL_${k}`;
      const res =
        v === 1
          ? await call(svc.url, token, 'POST', '/api/secrets', { key, value: secretValue() })
          : await call(svc.url, token, 'PUT', `/api/secrets/${key}`, { value: secretValue() });
      expect(res.status).toBeLessThan(300);
    }
  await receiver.held();
  expect(await svc.kill('SIGKILL')).toBe('SIGKILL');

  // The held requests now complete at the receiver (it saw them; the service never heard).
  receiver.mode = 'up';
  receiver.release();
  svc = await startService(vars);

  const unique = () => new Set(receiver.received.map((r) => r.id)).size;
  await until('every event', () => unique() >= KEYS * VERSIONS);
  await svc.kill('SIGTERM');

  expect(receiver.rejected).toBe(0);
  const seen = new Set<string>();
  const perKey = new Map<string, number[]>();
  for (const r of receiver.received) {
    if (seen.has(r.id)) continue;
    seen.add(r.id);
    const key = String(r.body.data.key);
    perKey.set(key, [...(perKey.get(key) ?? []), Number(r.body.data.version)]);
  }
  expect(seen.size).toBe(KEYS * VERSIONS);
  const inOrder = Array.from({ length: VERSIONS }, (_, i) => i + 1);
  for (let k = 0; k < KEYS; k++) expect(perKey.get(`APP_KILL_${k}`)).toEqual(inOrder);
  return receiver.received.length - seen.size;
}

describe('SIGKILL mid-delivery', () => {
  it('PostgreSQL: every event arrives after a restart, once per webhook-id after dedup, in order per key', async () => {
    // A schema of its own on the test database, dropped afterwards. (A database of its own
    // was dropped with DROP DATABASE, which in PostgreSQL 15 waits for an immediate
    // checkpoint of the whole cluster: more than two minutes on a loaded machine.)
    const schema = await newSchema();
    cleanups.push(['drop its schema', () => dropSchema(schema)]);
    const url = `${testDatabaseUrl}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const redelivered = await killMidDelivery({ DATABASE_URL: url });
    // The deliveries in flight at the kill were sent again (the receiver dedups them).
    expect(redelivered).toBeGreaterThan(0);
  }, 180_000);

  it('embedded PGlite with a data directory: the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'webhook-kill-'));
    cleanups.push(['remove the data directory', () => rm(dir, { recursive: true, force: true })]);
    const redelivered = await killMidDelivery({ DATA_DIR: dir });
    expect(redelivered).toBeGreaterThan(0);
  }, 180_000);
});
