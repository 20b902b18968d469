import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { distIsStale } from '../scripts/dist-stale.mjs';
import { loadMigrations } from '../src/db/migrate.js';
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
 * - dumps a migrated PGlite data directory that every PGlite test app starts from (cached, below).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (distIsStale(ROOT)) execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  project.provide('pgliteSnapshot', await cachedPgliteSnapshot());
  return async () => {};
}

/**
 * The snapshot is kept in node_modules/.cache under a name made of the migrations' text and
 * PGlite's version, so CI's second vitest step (and the next local run) loads it instead of
 * building it again; a changed migration or PGlite gives a new name.
 */
async function cachedPgliteSnapshot(): Promise<string> {
  const hash = createHash('sha256');
  hash.update(readFileSync(join(ROOT, 'node_modules/@electric-sql/pglite/package.json')));
  for (const m of await loadMigrations()) hash.update(`${m.name}\0${m.sql}\0`);
  const dir = join(ROOT, 'node_modules/.cache/secrets-tests');
  const file = join(dir, `pglite-snapshot-${hash.digest('hex').slice(0, 16)}.tar`);
  if (existsSync(file)) return file;
  const built = await buildPgliteSnapshot();
  mkdirSync(dir, { recursive: true });
  // Written beside the final name and renamed: a concurrent run never reads half a file.
  const partial = `${file}.${process.pid}`;
  copyFileSync(built.file, partial);
  renameSync(partial, file);
  await built.remove();
  return file;
}
