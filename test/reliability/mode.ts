/**
 * Short mode (default, CI) vs long mode (RELIABILITY_LONG=1, `npm run reliability:long`).
 * Every suite sizes its work from here, so one switch scales them all.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LONG = process.env.RELIABILITY_LONG === '1';

export const pick = <T>(short: T, long: T): T => (LONG ? long : short);

/**
 * One line per suite and backend, greppable in CI output: `[reliability] fuzz pglite {...}`.
 * With RELIABILITY_RESULTS=<dir> (`npm run reliability:results` sets it to
 * test/reliability/results), also stored there as `<suite>.<backend>.<mode>.json`, from which
 * `npm run reliability:doc` writes RELIABILITY.md's figures (a unit test checks they match).
 * Opt-in, so an ordinary test run leaves the committed results alone.
 */
export function report(suite: string, backend: string, figures: Record<string, unknown>): void {
  const mode = LONG ? 'long' : 'short';
  process.stdout.write(`[reliability] ${suite} ${backend} ${mode} ${JSON.stringify(figures)}\n`);
  const dir = process.env.RELIABILITY_RESULTS;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    const measured = new Date().toISOString().slice(0, 10);
    const result = { suite, backend, mode, measured, figures };
    writeFileSync(join(dir, `${suite}.${backend}.${mode}.json`), `${JSON.stringify(result, null, 2)}\n`);
  }
}

/** Progress of long runs, to a file named by RELIABILITY_PROGRESS (vitest holds stdout until a file ends). */
export function progress(suite: string, backend: string, figures: Record<string, unknown>): void {
  const file = process.env.RELIABILITY_PROGRESS;
  if (file)
    appendFileSync(file, `${new Date().toISOString()} ${suite} ${backend} ${JSON.stringify(figures)}\n`);
}
