import { randomBytes } from 'node:crypto';
import { expect, it, vi } from 'vitest';
import { freePort, startCluster } from '../helpers/pg-cluster.js';
import { capturedLogs } from '../helpers/secrets.js';
import { runServiceToExit, startService } from '../helpers/service-process.js';

/**
 * Start-up against PostgreSQL: bounded retry with backoff, then a message naming host,
 * port, database and cause (never the password) and exit code 69. Real processes: the
 * compiled service (built by test/global-setup.ts) and a throwaway cluster.
 */
const keys = () => ({
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(48).toString('base64'),
});

it('gives up after DATABASE_CONNECT_TIMEOUT_MS with host, port, database and cause, exit 69', async () => {
  const port = await freePort();
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const { code, out } = await runServiceToExit({
    NODE_ENV: 'test',
    PORT: '0',
    LOG_LEVEL: 'warn',
    DATABASE_URL: `postgres://app:${password}@127.0.0.1:${port}/appdb`,
    DATABASE_CONNECT_TIMEOUT_MS: '1500',
    ...keys(),
  });
  expect(code).toBe(69);
  expect(out).toContain(`cannot connect to the database 127.0.0.1:${port}/appdb as app`);
  expect(out).toContain('ECONNREFUSED');
  expect(out).toContain('database not reachable yet; retrying'); // it did retry
  expect(out).toContain('DATABASE_CONNECT_TIMEOUT_MS');
  expect(out).not.toContain(password);
  expect(out).not.toMatch(/^\s+at /m); // no stack trace
}, 60_000);

it('waits for a database that comes up after the service started, then serves', async () => {
  const cluster = await startCluster();
  try {
    await cluster.stop('fast');
    const retrying = () =>
      capturedLogs.filter((l) => l.includes('database not reachable yet; retrying')).length;
    const before = retrying();
    const starting = startService(
      { DATABASE_URL: cluster.url(), DATABASE_CONNECT_TIMEOUT_MS: '90000', ...keys() },
      120_000,
    );
    // The database comes up once the service has met it down and said it is retrying: an
    // event, not a fixed sleep (on a loaded machine the start-up alone takes longer than one).
    await Promise.race([
      starting,
      vi.waitFor(() => expect(retrying()).toBeGreaterThan(before), { timeout: 120_000, interval: 50 }),
    ]);
    await cluster.start();
    const svc = await starting;
    try {
      expect((await fetch(`${svc.url}/ready`)).status).toBe(200);
    } finally {
      await svc.kill();
    }
  } finally {
    await cluster.destroy();
  }
}, 180_000);

it('a database that does not exist stops start-up at once (exit 78) with the createdb command', async () => {
  const cluster = await startCluster();
  try {
    const url = new URL(cluster.url());
    url.pathname = '/no_such_db';
    const { code, out } = await runServiceToExit({
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'warn',
      DATABASE_URL: url.toString(),
      // Long: the refusal must not wait for it (a missing database is not "not up yet").
      DATABASE_CONNECT_TIMEOUT_MS: '600000',
      ...keys(),
    });
    expect(code).toBe(78);
    expect(out).toContain(
      `the database "no_such_db" does not exist on ${url.hostname}:${url.port}/no_such_db`,
    );
    const user = decodeURIComponent(url.username);
    expect(out).toContain(
      `create it (createdb -h ${url.hostname} -p ${url.port}${user ? ` -U ${user}` : ''} no_such_db)`,
    );
    expect(out).not.toContain('retrying');
    expect(out).not.toMatch(/^\s+at /m);
  } finally {
    await cluster.destroy();
  }
}, 120_000);
