import { defineConfig } from 'vitest/config';

// `npm test` runs every test on embedded PGlite; with TEST_DATABASE_URL set it runs every
// test a second time on PostgreSQL (project "postgres"), so one command covers both.
// The browser suite drives a real server in Chromium; the console is the same on every
// backend, so it runs once (on PGlite).
const BROWSER_SUITES = ['test/console.e2e.test.ts'];
const PROCESS_SUITES = [
  'test/reliability/failover.test.ts',
  'test/multi-host.test.ts',
  'test/topology.test.ts',
  'test/reliability/faults.test.ts',
  'test/reliability/instances.test.ts',
  'test/pgbouncer.test.ts',
  'test/reliability/read-storm.test.ts',
  'test/reliability/replicas.test.ts',
  'test/security/data-dir-lock.test.ts',
  'test/startup.test.ts',
  'test/package.test.ts',
];

const projects = [
  { extends: true as const, test: { name: 'pglite', env: { TEST_BACKEND: 'pglite' } } },
  ...(process.env.TEST_DATABASE_URL
    ? [
        {
          extends: true as const,
          test: {
            name: 'postgres',
            env: { TEST_BACKEND: 'postgres' },
            // These start their own PostgreSQL cluster whatever the backend: run them once.
            exclude: ['**/node_modules/**', ...PROCESS_SUITES, ...BROWSER_SUITES],
          },
        },
      ]
    : []),
];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Builds dist/ once (the CLI tests run the compiled CLI, as the installed package does)
    // and the web console (dist/console) when missing or older than its sources.
    globalSetup: ['test/global-setup.ts', 'scripts/console-build.ts'],
    testTimeout: 90_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects,
  },
});
