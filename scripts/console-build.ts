import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { consoleBuildIsStale as staleUnder } from './dist-stale.mjs';

/**
 * Builds the web console (console/ -> dist/console) with Vite when the build is missing or
 * older than its sources. `npm start` runs it (scripts/start.mjs) and the test run as vitest's
 * globalSetup, so `npm ci && npm start` serves a current console without a committed build
 * (a committed bundle would drift from its sources and bloat every diff).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const consoleBuildIsStale = (): boolean => staleUnder(ROOT);

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
