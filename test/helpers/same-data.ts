import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { backend, createTestApp, dropSchema, newSchema, type TestApp } from './app.js';

/** The environment of an app whose key ring is `keys` (`A:<base64>,B:...`). */
export const ringEnv = (keys: string) => ({ ENCRYPTION_KEY: '', ENCRYPTION_KEYS: keys });

/**
 * Test apps built one after another over the same data (a PGlite directory or a PostgreSQL
 * schema), as an operator restarting with another ENCRYPTION_KEYS would. Each test gets its
 * own data, named after `name`; its apps are closed and the data removed after it.
 */
export function appsOverSameData(name: string) {
  let dataDir: string | undefined;
  let schema: string | undefined;
  const open: TestApp[] = [];

  beforeEach(async () => {
    if (backend === 'postgres') schema = await newSchema();
    else dataDir = await mkdtemp(join(tmpdir(), `${name}-`));
  });
  afterEach(async () => {
    for (const a of open.splice(0)) await a.close();
    if (schema) await dropSchema(schema);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    schema = dataDir = undefined;
  });

  return {
    /** The current test's data: its PostgreSQL schema, or its PGlite directory. */
    data: () => ({ schema, dataDir }),
    /** An app over the test's data with the key ring `keys` and `env`. */
    async appWith(keys: string, env: Record<string, string> = {}): Promise<TestApp> {
      const a = await createTestApp({
        env: { ...ringEnv(keys), ...env },
        ...(schema ? { schema } : {}),
        ...(dataDir ? { dataDir } : {}),
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
