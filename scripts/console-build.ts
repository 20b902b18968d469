import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newestMtime } from './dist-stale.js';

/**
 * Builds the web console (console/ -> dist/console) with Vite when the build is missing or
 * older than its sources. `npm start` runs it as `prestart` and the test run as vitest's
 * globalSetup, so `npm ci && npm start` serves a current console without a committed build
 * (a committed bundle would drift from its sources and bloat every diff).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = [join(ROOT, 'console'), join(ROOT, 'package-lock.json')];
const BUILT = join(ROOT, 'dist/console/index.html');

export function consoleBuildIsStale(): boolean {
  if (!existsSync(BUILT)) return true;
  const built = statSync(BUILT).mtimeMs;
  return SOURCES.some((s) => existsSync(s) && newestMtime(s) > built);
}

export async function buildConsole(opts: { onlyIfStale?: boolean; quiet?: boolean } = {}): Promise<void> {
  if (opts.onlyIfStale && !consoleBuildIsStale()) return;
  let vite: typeof import('vite');
  try {
    vite = await import('vite');
  } catch {
    // Installed without dev dependencies (npm ci --omit=dev): the API still starts and
    // /console answers 503 saying how to build it.
    process.stderr.write('console: vite is not installed (dev dependency); the web console is not built\n');
    return;
  }
  await vite.build({ root: join(ROOT, 'console'), logLevel: opts.quiet ? 'warn' : 'info' });
}

// vitest globalSetup entry: build before any test file runs.
export default async function setup(): Promise<void> {
  await buildConsole({ onlyIfStale: true, quiet: true });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildConsole({ onlyIfStale: process.argv.includes('--if-stale') });
}
