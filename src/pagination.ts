import { z } from 'zod';
import { errors } from './errors.js';

/**
 * One home for list paging (secrets, access keys, audit): the limit schema, the opaque
 * cursor codec and page slicing. Cursors are base64url of `<tag>:<position>`; the position
 * is a bigint keyset column, so a decoded cursor is range-checked here: an overflowing one
 * used to reach SQL's ::bigint cast and answer 500 on every list but one.
 */

export const MAX_PAGE = 1000;
const LIMIT_MESSAGE = `limit must be a whole number from 1 to ${MAX_PAGE}`;
const INT8_MAX = 9_223_372_036_854_775_807n;
const INVALID_CURSOR = 'Invalid cursor: pass the nextCursor value of a previous page unchanged';

export const limitSchema = z.coerce
  .number({ error: LIMIT_MESSAGE })
  .int({ error: LIMIT_MESSAGE })
  .min(1, { error: LIMIT_MESSAGE })
  .max(MAX_PAGE, { error: LIMIT_MESSAGE })
  .optional();

export const cursorSchema = z
  .string()
  .max(200, { error: 'cursor is not valid' })
  .optional()
  .meta({ description: 'The nextCursor of the previous page' });

/** A cursor codec for one list; the tag keeps one list's cursors out of another. */
export function cursorCodec(tag: string) {
  const pattern = new RegExp(`^${tag}:([1-9][0-9]{0,18})$`);
  return {
    encode: (position: string) => Buffer.from(`${tag}:${position}`).toString('base64url'),
    /** The keyset position, or 400 INVALID_INPUT for anything not made by encode. */
    decode(cursor: string): string {
      const m = pattern.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (!m?.[1] || BigInt(m[1]) > INT8_MAX) throw errors.invalidInput(INVALID_CURSOR);
      return m[1];
    },
  };
}

/**
 * Cuts the `limit + 1` rows a repository returned into one page and the cursor of the
 * next (null on the last page).
 */
export function pageOf<R>(
  rows: readonly R[],
  limit: number,
  positionOf: (row: R) => string,
  encode: (position: string) => string,
): { page: R[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextCursor: rows.length > limit && last ? encode(positionOf(last)) : null };
}
