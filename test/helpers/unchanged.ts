import { expect } from 'vitest';
import type { Queryable } from '../../src/db/database.js';
import { tableDigest } from '../reliability/snapshot.js';

/**
 * "A refused write changed nothing", proved on every row of every data table (the digest
 * of test/reliability/snapshot.ts, the token-attack suite's model), not on the one column a
 * test thinks of. Left out: the audit log (recording refusals is its job) and the two
 * last-used stamps, which authenticating with an access key or reading a secret may move
 * whatever the answer.
 */
export const STAMPS = { ignoreColumns: ['last_used_at', 'last_used_by'] };

export async function expectNothingChanged<T>(
  db: Queryable,
  what: string,
  act: () => Promise<T>,
): Promise<T> {
  const before = await tableDigest(db, STAMPS);
  const out = await act();
  // Compared table by table, so a failure names the table that changed.
  const after = await tableDigest(db, STAMPS);
  expect(after.split(','), `${what} changed a row of a data table`).toEqual(before.split(','));
  return out;
}
