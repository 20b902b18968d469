import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BENCH_OPTIONS, parseBenchArgs, USAGE } from '../../bench/args.js';

const run = promisify(execFile);

describe('the benchmark command line (bench/args.ts)', () => {
  it('--help and -h ask for the usage, which names every option', () => {
    expect(parseBenchArgs(['--help'])).toEqual({ kind: 'help' });
    expect(parseBenchArgs(['--only', 'floor', '-h'])).toEqual({ kind: 'help' });
    for (const name of Object.keys(BENCH_OPTIONS)) expect(USAGE, name).toContain(`--${name}`);
  });

  it('parses a run with its defaults', () => {
    const parsed = parseBenchArgs(['--only', 'floor', '--pairs', '2', '--skip-build']);
    expect(parsed).toMatchObject({
      kind: 'run',
      args: { only: 'floor', pairs: '2', 'skip-build': true, backends: 'postgres,pglite', smoke: false },
    });
  });

  it('refuses an unknown option, a stray argument and a missing value, each said plainly', () => {
    const hint = '(npm run bench -- --help lists the options)';
    expect(parseBenchArgs(['--bogus'])).toEqual({ kind: 'error', message: `unknown option --bogus ${hint}` });
    expect(parseBenchArgs(['floor'])).toEqual({
      kind: 'error',
      message: `unexpected argument floor: every option is --name or --name value ${hint}`,
    });
    expect(parseBenchArgs(['--only'])).toEqual({
      kind: 'error',
      message: `Option '--only <value>' argument missing ${hint}`,
    });
  });

  it('npm run bench -- --help prints the usage and exits 0; an unknown option exits 2 before anything runs', async () => {
    const tsx = ['node_modules/.bin/tsx', 'bench/run.ts'] as const;
    const [help, bogus] = await Promise.all([
      run(tsx[0], [tsx[1], '--help']),
      run(tsx[0], [tsx[1], '--bogus']).then(
        () => ({ code: 0, stderr: '', stdout: '' }),
        (err: { code: number; stderr: string; stdout: string }) => err,
      ),
    ]);
    expect(help.stdout).toBe(USAGE);
    expect(bogus.code).toBe(2);
    expect(bogus.stdout).toBe('');
    expect(bogus.stderr).toBe('bench: unknown option --bogus (npm run bench -- --help lists the options)\n');
  }, 120_000);
});
