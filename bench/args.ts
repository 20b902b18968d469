import { type ParseArgsConfig, parseArgs } from 'node:util';

/**
 * The command line of bench/run.ts: its usage (what `npm run bench -- --help` prints) and
 * its options, parsed strictly with node:util's parseArgs. Apart from run.ts, which starts
 * measuring as soon as it is loaded, so the parsing can be tested on its own.
 */
export const USAGE = `npm run bench          full run: throughput vs ceiling and floor, scale, 5-minute soak
npm run bench:smoke    (--smoke) the same harness for a few seconds (CI), results not written
Options: --only throughput,scale,soak   --backends postgres,pglite   --seconds N
         --scale-max N      stop the scale part at N secrets (1M takes minutes to seed)
         --merge FILE       a partial run keeps the parts (and scale sizes) it did not measure
                            from an earlier results JSON, each marked with the run it came from
         --only floor       the read-path comparison (issue 10): service vs the primary-key
                            floor, read and mixed 90/10, --pairs N alternating pairs (default 3),
                            ratios of throughput, p99, PostgreSQL CPU and service CPU per request,
                            and the audit batch sizes; --label names the markdown it writes;
                            --scenarios read,mixed measures only those (e.g. --scenarios mixed);
                            --skip-build reuses dist/ as it is; --compare DIR adds another built
                            tree (e.g. an older commit's worktree) to every pair, measured in
                            turn with this tree and the floor (order alternating by pair), so a
                            regression is judged on same-run ratios, not on runs at other loads
         --only replica     read replicas (issue 14): three instances on one primary vs three that
                            also read from an asynchronous replica, read and mixed, --pairs N;
                            ratio, replica share of reads, lag seen, PostgreSQL CPU per request
                            (bench/replica.ts; starts its own topology on free ports)
         --only embedded    PGlite start-up and memory (issue 27): first and later start, RSS after
                            start and after --reads N value reads (10,000), against bare PGlite,
                            --pairs N; --compare DIR adds another built tree (bench/embedded.ts)
         --only cli         the light CLI's start-up (issue 25): \`secrets run -- true\` against
                            \`node -e 0\`, --runs N rounds (default 30), order rotated each round;
                            --compare BUNDLE adds another CLI build (bench/cli-start.ts)
         --only events      change events (issue 26): update throughput of an instance with one
                            webhook subscription against one with none, --pairs N alternating,
                            and the commit-to-delivery delay p50/p99 (bench/events.ts)
         --only isolation   a benign caller (mixed, 8 connections) alone, then beside hostile and
                            heavy callers, --pairs N turns: its p99 ratio and failures (issue 21;
                            bench/isolation.ts); a benign failure makes the run fail;
                            --compare DIR runs another built tree's turns too, alternating
         --help             print this and exit
`;

export const BENCH_OPTIONS = {
  smoke: { type: 'boolean', default: false },
  only: { type: 'string', default: 'throughput,scale,soak' },
  backends: { type: 'string', default: 'postgres,pglite' },
  seconds: { type: 'string' },
  'scale-max': { type: 'string' },
  merge: { type: 'string' },
  pairs: { type: 'string', default: '3' },
  label: { type: 'string', default: 'run' },
  'skip-build': { type: 'boolean', default: false },
  compare: { type: 'string' },
  reads: { type: 'string', default: '10000' },
  runs: { type: 'string', default: '30' },
  scenarios: { type: 'string', default: 'read,mixed' },
  help: { type: 'boolean', short: 'h', default: false },
} satisfies ParseArgsConfig['options'];

const parse = (args: string[]) =>
  parseArgs({ args, options: BENCH_OPTIONS, strict: true, allowPositionals: false });

export type BenchArgs = ReturnType<typeof parse>['values'];

/** What the command line asks: a run with its options, the usage, or an error to show with exit code 2. */
export type Parsed = { kind: 'run'; args: BenchArgs } | { kind: 'help' } | { kind: 'error'; message: string };

/** node:util's parse errors, said for this command (its own message suggests `--` for an unknown option). */
function explain(err: { code?: unknown; message: string }): string {
  const hint = 'npm run bench -- --help lists the options';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = /^Unknown option '([^']+)'/.exec(err.message)?.[1] ?? err.message;
      return `unknown option ${name} (${hint})`;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /^Unexpected argument '([^']+)'/.exec(err.message)?.[1] ?? err.message;
      return `unexpected argument ${arg}: every option is --name or --name value (${hint})`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `${err.message} (${hint})`;
    default:
      throw err;
  }
}

export function parseBenchArgs(argv: string[]): Parsed {
  let args: BenchArgs;
  try {
    args = parse(argv).values;
  } catch (err) {
    return { kind: 'error', message: explain(err as { code?: unknown; message: string }) };
  }
  return args.help ? { kind: 'help' } : { kind: 'run', args };
}
