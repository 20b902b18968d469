import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { buildPgliteSnapshot } from './helpers/pglite-snapshot.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the migrated PGlite data directory dump (test/helpers/pglite-snapshot.ts). */
    pgliteSnapshot: string;
  }
}

/**
 * Once per test run, before any file:
 * - compiles src/ to dist/: the CLI tests run the compiled CLI (node dist/cli/secrets.js
 *   starts in a fraction of the time tsx needs to compile it per process);
 * - dumps a migrated PGlite data directory that every in-memory test app starts from.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  execFileSync('npm', ['run', '-s', 'build'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: 'inherit',
  });
  const snapshot = await buildPgliteSnapshot();
  project.provide('pgliteSnapshot', snapshot.file);
  return () => snapshot.remove();
}
