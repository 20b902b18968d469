import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { distEntry } from '../helpers/cli.js';
import { secretValue } from '../helpers/secrets.js';
import { type ServiceProcess, startService } from '../helpers/service-process.js';

/**
 * Issue 11 item 0: one process at a time on an embedded DATA_DIR. Real processes: the
 * service (src/main.ts) and the migrate command, a refused second opener, and a SIGKILLed
 * holder after which a new start succeeds. PGlite only (the lock guards embedded files).
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const running: ServiceProcess[] = [];
let dataDir: string;

afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function runMigrate(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [distEntry('cli/migrate')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('DATA_DIR lock (embedded PGlite)', () => {
  it('refuses a second server and migrate naming the holder, and recovers after the holder is SIGKILLed', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'secrets-lock-'));
    const env = {
      DATA_DIR: dataDir,
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_SECRET: randomBytes(48).toString('base64'),
    };
    const token = mintAdminToken(loadConfig(env), env.JWT_SECRET, { sub: 'lock-test', ttlSeconds: 600 });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    const first = await startService(env);
    running.push(first);
    const value = secretValue('lock');
    const created = await fetch(`${first.url}/api/secrets`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ key: 'LOCKED_ONE', value }),
    });
    expect(created.status).toBe(201);

    // A second server on the same directory exits before listening, naming the holder.
    const second = await startService(env).then(
      (s) => {
        running.push(s);
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(second).toContain('service exited (75)');
    expect(second).toContain(`in use by process ${first.child.pid} (the secrets server`);

    const migrate = await runMigrate(env);
    expect(migrate.code).not.toBe(0);
    expect(migrate.stderr).toContain(`in use by process ${first.child.pid} (the secrets server`);

    // The holder crashes: its lock goes stale and the next start takes it over.
    await first.kill('SIGKILL');
    const third = await startService(env);
    running.push(third);
    const read = await fetch(`${third.url}/api/secrets/LOCKED_ONE`, { headers });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { value: string }).value).toBe(value);

    // While the new holder runs, migrate is refused naming it; after a clean stop it runs.
    expect((await runMigrate(env)).stderr).toContain(`in use by process ${third.child.pid}`);
    expect(await third.kill('SIGTERM')).toBe(0);
    const after = await runMigrate(env);
    expect(after.stderr).toBe('');
    expect(after.code).toBe(0);
  }, 120_000);
});
