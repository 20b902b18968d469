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

/** What a caller asks of a list: how many (at most MAX_PAGE) and from where. */
export interface PageQuery {
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** What one list's cursors are made of. */
export interface CursorCodecDeps<R> {
  /** Keeps one list's cursors out of another (e.g. `v1` for secrets, `k1` for access keys). */
  tag: string;
  /** A row's keyset position (its seq or id). */
  positionOf: (row: R) => string;
}

/** The paging of one list of rows: its opaque cursors and the cutting of its pages. */
export class CursorCodec<R> {
  private readonly pattern: RegExp;

  constructor(private readonly deps: CursorCodecDeps<R>) {
    this.pattern = new RegExp(`^${deps.tag}:([1-9][0-9]{0,18})$`);
  }

  encode(position: string): string {
    return Buffer.from(`${this.deps.tag}:${position}`).toString('base64url');
  }

  /** The keyset position, or 400 INVALID_INPUT for anything not made by encode. */
  decode(cursor: string): string {
    const m = this.pattern.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!m?.[1] || BigInt(m[1]) > INT8_MAX) throw errors.invalidInput(INVALID_CURSOR);
    return m[1];
  }

  /**
   * One page: `fetch` gets the page size and the position to continue after (undefined
   * on the first page) and returns up to size + 1 rows. A bad cursor is refused before
   * anything is fetched.
   */
  async page<T extends R>(
    query: PageQuery,
    fetch: (limit: number, after: string | undefined) => Promise<readonly T[]>,
    defaultLimit = MAX_PAGE,
  ): Promise<{ page: T[]; nextCursor: string | null }> {
    const limit = Math.min(query.limit ?? defaultLimit, MAX_PAGE);
    const rows = await fetch(limit, query.cursor === undefined ? undefined : this.decode(query.cursor));
    return pageOf(rows, limit, this.deps.positionOf, (position) => this.encode(position));
  }
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
