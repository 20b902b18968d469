import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, inject } from 'vitest';
import type { PgliteLease } from '../../src/db/pglite.js';
import { backend, createTestApp, dropSchema, newSchema, type TestApp } from './app.js';
import { leasePglite } from './pglite-snapshot.js';

/** The environment of an app whose key ring is `keys` (`A:<base64>,B:...`). */
export const ringEnv = (keys: string) => ({ ENCRYPTION_KEY: '', ENCRYPTION_KEYS: keys });

/**
 * Test apps built one after another over the same data (a PostgreSQL schema, or one PGlite
 * database), as an operator restarting with another ENCRYPTION_KEYS would. Each test gets its
 * own data, named after `name`; its apps are closed and the data removed after it.
 *
 * On PGlite the data is one in-memory database that outlives each app, as a schema does on
 * PostgreSQL: an app's close ends its session (DISCARD ALL: session settings, advisory locks
 * and prepared statements go, as with a restart) and the next app starts over the same rows,
 * through the same migrations and key check. A start on a data directory costs a copy of the
 * image (the first) and a PGlite boot each, about 0.3 s of CPU apiece, several seconds of wall
 * time on a loaded machine. `onDisk` keeps a directory instead, for a test that hands the data
 * to another process (`data().dataDir`).
 */
export function appsOverSameData(name: string, opts: { onDisk?: boolean } = {}) {
  let dataDir: string | undefined;
  let schema: string | undefined;
  let memory: PgliteLease | undefined;
  const open: TestApp[] = [];

  beforeEach(async () => {
    if (backend === 'postgres') schema = await newSchema();
    else if (opts.onDisk) dataDir = await mkdtemp(join(tmpdir(), `${name}-`));
    else memory = await leasePglite(inject('pgliteSnapshot'));
  });
  afterEach(async () => {
    for (const a of open.splice(0)) await a.close();
    if (schema) await dropSchema(schema);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    memory?.release();
    schema = dataDir = memory = undefined;
  });

  /** One app's hold on the shared in-memory database: its close ends the session, not the database. */
  const session = (m: PgliteLease): PgliteLease => ({
    instance: m.instance,
    release: () => void m.instance.query('DISCARD ALL').catch(() => {}),
  });

  return {
    /** The current test's data: its PostgreSQL schema, or its PGlite directory (`onDisk`). */
    data: () => ({ schema, dataDir }),
    /** An app over the test's data with the key ring `keys` and `env`. */
    async appWith(keys: string, env: Record<string, string> = {}): Promise<TestApp> {
      const a = await createTestApp({
        env: { ...ringEnv(keys), ...env },
        ...(schema ? { schema } : {}),
        ...(dataDir ? { dataDir } : {}),
        ...(memory ? { pgliteLease: session(memory) } : {}),
      });
      open.push(a);
      return a;
    },
    /** Closes `a` (made another way) after the test too. */
    closeAfter(a: TestApp): TestApp {
      open.push(a);
      return a;
    },
    async closeApp(a: TestApp): Promise<void> {
      open.splice(open.indexOf(a), 1);
      await a.close();
    },
    /** A request as the admin. */
    call: (a: TestApp, method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) =>
      a.app.inject({ method, url, headers: a.auth(), ...(payload ? { payload } : {}) }),
  };
}
