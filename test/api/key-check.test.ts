import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { KeyCheckError } from '../../src/crypto/canary.js';
import { createLogger } from '../../src/logger.js';
import { openRuntime } from '../../src/runtime.js';
import { backend, createTestApp, dropSchema, newSchema, testDatabaseUrl } from '../helpers/app.js';
import { distEntry } from '../helpers/cli.js';
import { api } from '../helpers/http.js';
import { seedPgliteDir } from '../helpers/pglite-snapshot.js';
import { secretValue } from '../helpers/secrets.js';

const dirs: string[] = [];
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'secrets-keycheck-'));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const WRONG_KEY = /The encryption key for key id "k1" is not the one this database was written with/;

describe('a wrong ENCRYPTION_KEY stops start-up', () => {
  // Persistent PGlite start-ups (initdb on disk) are slow on a loaded machine.
  it(
    'openRuntime throws KeyCheckError with a clear message; the right key still opens',
    { timeout: 180_000 },
    async () => {
      const schema = backend === 'postgres' ? await newSchema() : undefined;
      const dataDir = backend === 'pglite' ? await tempDir() : undefined;
      const where = { ...(schema ? { schema } : {}), ...(dataDir ? { dataDir } : {}) };
      const value = secretValue();
      const first = await createTestApp(where);
      await api(first).create({ key: 'KEYED', value });
      await first.close();
      try {
        const wrong = { ...first.env, ENCRYPTION_KEY: randomBytes(32).toString('base64') };
        const err = await openRuntime(
          loadConfig(wrong),
          createLogger('silent'),
          schema ? { pgSchema: schema } : {},
        ).then(
          // Opened after all (the check below fails): closed before the schema is dropped.
          (opened) => opened.close().then(() => null),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(KeyCheckError);
        expect((err as Error).message).toMatch(WRONG_KEY);
        expect((err as Error).message).toMatch(/Start with the original ENCRYPTION_KEY/);

        const again = await createTestApp({ ...where, env: first.env });
        try {
          expect((await api(again).reveal('KEYED')).json().value).toBe(value);
        } finally {
          // Closed before its schema is dropped, whatever the check found.
          await again.close();
        }
      } finally {
        if (schema) await dropSchema(schema);
      }
    },
  );
});

/** Children of runMain still running when a test ends (it failed or timed out): killed after it. */
const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

/**
 * Runs the compiled service (dist/main.js) as a real process; resolves with its exit code and
 * output once it exits, or once it logs "ready" (then stopped with SIGTERM and awaited). It
 * waits for those events, not for a clock: a start-up on a loaded machine may take many times
 * its usual second, and the test's own timeout is the bound (a child left then is killed).
 */
function runMain(env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string; ready?: Record<string, unknown> }>((resolve) => {
    const child = spawn(process.execPath, [distEntry('main')], {
      cwd: join(import.meta.dirname, '../..'),
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let out = '';
    let ready: Record<string, unknown> | undefined;
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready) return;
      const line = out.split('\n').find((l) => l.includes('secrets service ready'));
      if (!line) return;
      ready = JSON.parse(line) as Record<string, unknown>;
      child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('close', (code) => {
      running.delete(child);
      resolve({ code, out, ...(ready ? { ready } : {}) });
    });
  });
}

describe('the real process (src/main.ts)', () => {
  it('starts, then refuses to start with another ENCRYPTION_KEY: non-zero exit and the message', async () => {
    const dataDir = await tempDir();
    // The embedded database starts from the migrated snapshot (a fresh DATA_DIR's initdb is the
    // process suites' and the CLI migrate test's to cover); the key check is what this tests.
    if (backend === 'pglite') await seedPgliteDir(dataDir, inject('pgliteSnapshot'));
    let databaseUrl: string | undefined;
    let schema: string | undefined;
    if (backend === 'postgres') {
      // A schema of its own, named in the URL's search_path, so the service touches no shared
      // table. (Not a database of its own: DROP DATABASE waits for an immediate checkpoint of
      // the whole cluster, minutes on a loaded machine.)
      schema = await newSchema();
      databaseUrl = `${testDatabaseUrl}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    }
    try {
      const base = {
        DATA_DIR: dataDir,
        JWT_SECRET: randomBytes(48).toString('base64'),
        ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      };
      const good = await runMain({ ...base, ENCRYPTION_KEY: randomBytes(32).toString('base64') });
      expect(good.ready, good.out).toMatchObject({ backend, startupMs: expect.any(Number) });
      expect(good.code).toBe(0);

      // Side by side: a malformed key is refused before the database is opened, so it does
      // not contend for the DATA_DIR with the wrong key's run.
      const [bad, malformed] = await Promise.all([
        runMain({ ...base, ENCRYPTION_KEY: randomBytes(32).toString('base64') }),
        runMain({ ...base, ENCRYPTION_KEY: 'too-short' }),
      ]);
      expect(bad.ready).toBeUndefined();
      expect(bad.code).not.toBe(0);
      expect(bad.out).toMatch(WRONG_KEY);

      expect(malformed.code).not.toBe(0);
      expect(malformed.out).toMatch(/ENCRYPTION_KEY must be 32 bytes .*openssl rand -base64 32/);
    } finally {
      if (schema) await dropSchema(schema);
    }
  }, 180_000);
});
