/**
 * Short mode (default, CI) vs long mode (RELIABILITY_LONG=1, `npm run reliability:long`).
 * Every suite sizes its work from here, so one switch scales them all.
 */
import { appendFileSync } from 'node:fs';

export const LONG = process.env.RELIABILITY_LONG === '1';

export const pick = <T>(short: T, long: T): T => (LONG ? long : short);

/** One line per suite and backend, greppable in CI output: `[reliability] fuzz pglite {...}`. */
export function report(suite: string, backend: string, figures: Record<string, unknown>): void {
  process.stdout.write(
    `[reliability] ${suite} ${backend} ${LONG ? 'long' : 'short'} ${JSON.stringify(figures)}\n`,
  );
}

/** Progress of long runs, to a file named by RELIABILITY_PROGRESS (vitest holds stdout until a file ends). */
export function progress(suite: string, backend: string, figures: Record<string, unknown>): void {
  const file = process.env.RELIABILITY_PROGRESS;
  if (file)
    appendFileSync(file, `${new Date().toISOString()} ${suite} ${backend} ${JSON.stringify(figures)}\n`);
}
