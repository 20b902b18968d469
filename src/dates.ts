import { z } from 'zod';

/**
 * One ISO 8601 date-time schema for every date a caller sends (secret and access-key
 * expiry, audit filters). A time zone is required; after normalising the offset to UTC the
 * year must be 0001..9999: PostgreSQL stores wider ranges, but PGlite (and JavaScript
 * round-trips through toISOString) fail on them with a 500. Yields a Date.
 */
const FIRST = new Date('0001-01-01T00:00:00Z').getTime();
const LAST = new Date('9999-12-31T23:59:59.999Z').getTime();

export function isoDateTime(field: string) {
  const message = `${field} must be an ISO 8601 date-time with a time zone (e.g. 2030-01-01T00:00:00Z)`;
  return z.iso.datetime({ offset: true, error: message }).transform((s, ctx) => {
    const d = new Date(s);
    const t = d.getTime();
    if (Number.isNaN(t) || t < FIRST || t > LAST) {
      ctx.addIssue({
        code: 'custom',
        message: `${field} must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (in UTC)`,
      });
      return z.NEVER;
    }
    return d;
  });
}
