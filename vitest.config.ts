import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

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

/**
 * The files that take longest (measured on a fresh clone, test time on a busy 2-core machine),
 * started first in their project, so the run does not end waiting for one of them alone. A
 * fresh clone has no timing cache, and Vitest's default order (largest file first) put
 * process/package.test.ts (a small file, 35 s) last.
 */
const SLOW_FIRST = [
  'test/process/console.e2e.test.ts',
  'test/process/console-environments.e2e.test.ts',
  'test/reliability/failover.test.ts',
  'test/reliability/replicas.test.ts',
  'test/process/package.test.ts',
  'test/process/data-dir-lock.test.ts',
  'test/kek/rotation.test.ts',
  'test/cli/cli.test.ts',
  'test/api/key-check.test.ts',
  'test/cli/provisioning.test.ts',
  'test/reliability/fuzz.test.ts',
  'test/api/access-keys.test.ts',
  'test/api/persistence.test.ts',
];
class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((p) => f.moduleId.endsWith(`/${p}`));
      return i === -1 ? SLOW_FIRST.length : i;
    };
    // Base order groups the files by project; keep the groups, reorder inside each.
    const groups = new Map<string, TestSpecification[]>();
    for (const f of sorted) groups.set(f.project.name, [...(groups.get(f.project.name) ?? []), f]);
    return [...groups.values()].flatMap((g) => g.sort((a, b) => rank(a) - rank(b)));
  }
}
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
    sequence: { sequencer: SlowFirstSequencer },
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
