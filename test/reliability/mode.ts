/**
 * Short mode (default, CI) vs long mode (RELIABILITY_LONG=1, `npm run reliability:long`).
 * Every suite sizes its work from here, so one switch scales them all.
 */
export const LONG = process.env.RELIABILITY_LONG === '1';

export const pick = <T>(short: T, long: T): T => (LONG ? long : short);

/** One line per suite and backend, greppable in CI output: `[reliability] fuzz pglite {...}`. */
export function report(suite: string, backend: string, figures: Record<string, unknown>): void {
  process.stdout.write(
    `[reliability] ${suite} ${backend} ${LONG ? 'long' : 'short'} ${JSON.stringify(figures)}\n`,
  );
}
