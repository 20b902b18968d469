import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Four projects; `npm test` runs them all (see test/README.md):
 * - unit: no database (pure functions, configuration, OpenAPI document, import rules): once.
 * - pglite: every app-level file on embedded PGlite.
 * - postgres (with TEST_DATABASE_URL): the same files again on PostgreSQL, except the
 *   client-side files below, whose behaviour does not depend on the storage backend: with
 *   PostgreSQL available they run there once (an app on PostgreSQL starts faster), otherwise
 *   on PGlite.
 * - process: suites that start real outside programs (their own PostgreSQL clusters,
 *   PgBouncer, service processes, Chromium, npm pack) whatever the backend: once, and CI runs
 *   them as their own step (.ci/run).
 */
const UNIT = ['test/unit/**/*.test.ts'];
const PROCESS = [
  'test/process/**/*.test.ts',
  'test/reliability/faults.test.ts',
  'test/reliability/instances.test.ts',
  'test/reliability/read-storm.test.ts',
  'test/reliability/failover.test.ts',
  'test/reliability/replicas.test.ts',
];
const BACKEND_INDEPENDENT = [
  'test/cli/**/*.test.ts',
  'test/client/**/*.test.ts',
  'test/console/static.test.ts',
];
const onPostgres = Boolean(process.env.TEST_DATABASE_URL);
const app = ['test/**/*.test.ts'];
const notApp = ['**/node_modules/**', ...UNIT, ...PROCESS];

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    // Builds dist/ once (the CLI tests run the compiled CLI, as the installed package does)
    // with a migrated PGlite snapshot, and the web console (dist/console) when missing or
    // older than its sources.
    globalSetup: ['test/global-setup.ts', 'scripts/console-build.ts'],
    testTimeout: 90_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default for `run` is one worker fewer than the cores: a single worker, files
    // one after another, on this 2-core machine. Most files wait part of the time (PostgreSQL
    // answering, a child process, a timer), so one worker more than the cores keeps both busy.
    maxWorkers: availableParallelism() + 1,
    // Workers are reused across files (see test/README.md, "Why it is fast"): a fresh worker
    // per file spent about 2 s importing src/, fastify and PGlite again, ~200 s over a run.
    // The in-process files keep no state between files beyond what test/setup.ts clears.
    isolate: false,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      {
        extends: true,
        test: {
          name: 'pglite',
          include: app,
          exclude: [...notApp, ...(onPostgres ? BACKEND_INDEPENDENT : [])],
          env: { TEST_BACKEND: 'pglite' },
        },
      },
      ...(onPostgres
        ? [
            {
              extends: true as const,
              test: { name: 'postgres', include: app, exclude: notApp, env: { TEST_BACKEND: 'postgres' } },
            },
          ]
        : []),
      { extends: true, test: { name: 'process', include: PROCESS, env: { TEST_BACKEND: 'pglite' } } },
    ],
  },
});
