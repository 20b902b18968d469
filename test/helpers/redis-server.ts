import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './pg-cluster.js';

/**
 * The Redis a suite talks to: TEST_REDIS_URL when set (`.ci/run` starts one on a free port
 * and passes it), else a redis-server of the suite's own on a free port, so no test depends
 * on a Redis somebody else happens to run on 6379. `stop()` ends only the server it started.
 */
export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));

export async function testRedis(): Promise<TestRedis> {
  const given = process.env.TEST_REDIS_URL;
  if (given) return { url: given, stop: async () => {} };
  if (!REDIS_SERVER)
    throw new Error(
      'redis-server is not installed (Debian: apt-get install -y redis-server), or set TEST_REDIS_URL',
    );
  const dir = mkdtempSync(join(tmpdir(), 'test-redis-'));
  const port = await freePort();
  const child: ChildProcess = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  // Ready when it answers: ioredis queues the PING and reconnects until the server listens.
  const probe = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  probe.on('error', () => {}); // refused connections until it listens: expected, retried
  try {
    await Promise.race([
      probe.ping(),
      exited.then(() => Promise.reject(new Error(`redis-server on ${port} exited before answering`))),
    ]);
  } finally {
    probe.disconnect();
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
