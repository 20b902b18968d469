import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
 * - compiles src/ to dist/ when it is missing or older than src/: the CLI tests run the compiled CLI (node dist/cli/secrets.js
 *   starts in a fraction of the time tsx needs to compile it per process);
 * - dumps a migrated PGlite data directory that every in-memory test app starts from.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** dist/ is missing or older than a source (so a second vitest step, or one file, skips tsc). */
function distIsStale(): boolean {
  const built = join(ROOT, 'dist/main.js');
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  return ['src', 'tsconfig.build.json', 'tsconfig.json', 'package-lock.json'].some(
    (p) => newestMtime(join(ROOT, p)) > builtAt,
  );
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (distIsStale()) execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const snapshot = await buildPgliteSnapshot();
  project.provide('pgliteSnapshot', snapshot.file);
  return () => snapshot.remove();
}
