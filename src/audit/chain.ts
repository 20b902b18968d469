import { createHash } from 'node:crypto';

/** The chain starts from 32 zero bytes. */
export const GENESIS_HASH = Buffer.alloc(32);
/** Bytes of each row digest a seal stores to name the first row that differs. */
export const SHORT_DIGEST = 8;

/** The columns a row is sealed over, as the repository reads them (all text, exact). */
export interface SealedRowContent {
  id: string;
  /** The time as the database renders it to the microsecond (a JS Date drops them). */
  at_text: string;
  actor: string;
  action: string;
  key: string | null;
  version: number | null;
  outcome: string;
  request_id: string | null;
  client_ip: string | null;
  client_request_id: boolean;
  xid: string;
  /**
   * The secret's environment (issue 23). Rows written before environments existed have
   * none, and their canonical content is what it was, so their seals still verify.
   */
  environment?: string | null | undefined;
}

/**
 * The canonical content of a row: a JSON array in a fixed field order, the environment
 * appended only when the row has one (rows from before environments keep their old form).
 */
export function canonicalRow(r: SealedRowContent): string {
  const fields: unknown[] = [
    r.id,
    r.at_text,
    r.actor,
    r.action,
    r.key,
    r.version,
    r.outcome,
    r.request_id,
    r.client_ip,
    r.client_request_id,
    r.xid,
  ];
  if (r.environment != null) fields.push(r.environment);
  return JSON.stringify(fields);
}

export const rowDigest = (r: SealedRowContent): Buffer =>
  createHash('sha256').update(canonicalRow(r), 'utf8').digest();

/** What a seal says about itself; every field is inside its hash. */
export interface SealHeader {
  seq: string;
  xidFrom: string;
  xidTo: string;
  /** ISO instants (whole UTC days) or null for unbounded. */
  atLo: string | null;
  atHi: string | null;
  rowCount: number;
}

export const canonicalHeader = (h: SealHeader): string =>
  JSON.stringify([h.seq, h.xidFrom, h.xidTo, h.atLo, h.atHi, h.rowCount]);

/** hash = sha256(prev_hash || canonical header || each row's full digest, in id order). */
export function sealHash(prev: Buffer, h: SealHeader, digests: Buffer[]): Buffer {
  const hash = createHash('sha256').update(prev).update(canonicalHeader(h), 'utf8');
  for (const d of digests) hash.update(d);
  return hash.digest();
}

export const shortDigests = (digests: Buffer[]): Buffer =>
  Buffer.concat(digests.map((d) => d.subarray(0, SHORT_DIGEST)));

/** A stored seal as verification reads it (from the database or an archive). */
export interface StoredSeal {
  seq: string;
  xid_from: string;
  xid_to: string;
  at_lo: string | null;
  at_hi: string | null;
  first_id: string | null;
  last_id: string | null;
  row_count: number;
  row_digests: Buffer;
  prev_hash: Buffer;
  hash: Buffer;
}

/** Where the chain stands after a seal: what the next seal must continue from. */
export interface ChainPosition {
  seq: bigint;
  hash: Buffer;
  xidFrom: string;
  xidTo: string;
  /** null once the seals of the range [xidFrom, xidTo) tiled all of time. */
  atHi: string | null;
}

export const GENESIS_POSITION: ChainPosition = {
  seq: 0n,
  hash: GENESIS_HASH,
  xidFrom: '0',
  xidTo: '0',
  atHi: null,
};

/** Where verification starts: after the archive anchor when old partitions were dropped, else genesis. */
export function startPosition(
  anchor:
    | { seal_seq: string; hash: Buffer; xid_from: string; xid_to: string; at_hi: string | null }
    | undefined,
): ChainPosition {
  return anchor
    ? {
        seq: BigInt(anchor.seal_seq),
        hash: anchor.hash,
        xidFrom: anchor.xid_from,
        xidTo: anchor.xid_to,
        atHi: anchor.at_hi,
      }
    : GENESIS_POSITION;
}

export interface Break {
  firstBrokenId: string | null;
  firstBrokenSeal: string;
  reason: string;
}

const headerOf = (s: StoredSeal): SealHeader => ({
  seq: s.seq,
  xidFrom: s.xid_from,
  xidTo: s.xid_to,
  atLo: s.at_lo,
  atHi: s.at_hi,
  rowCount: s.row_count,
});

/**
 * Checks one seal against the chain position before it and the rows it covers now (in id
 * order). Returns the first thing that does not match, naming a row where one can be named.
 * Pure: the online verifier and the offline archive verifier share it.
 */
export interface DigestedRow {
  id: string;
  digest: Buffer;
}

export const digested = (r: SealedRowContent): DigestedRow => ({ id: r.id, digest: rowDigest(r) });

export function checkSeal(pos: ChainPosition, s: StoredSeal, rows: DigestedRow[]): Break | null {
  const expected = pos.seq + 1n;
  if (s.seq !== String(expected)) {
    return {
      firstBrokenId: null,
      firstBrokenSeal: String(expected),
      reason: `seal ${expected} is missing (deleted or renumbered); the next seal found is ${s.seq}`,
    };
  }
  const brokenSeal = (reason: string): Break => ({
    firstBrokenId: s.first_id,
    firstBrokenSeal: s.seq,
    reason,
  });
  if (s.prev_hash.length !== 32 || !s.prev_hash.equals(pos.hash)) {
    return brokenSeal(
      `seal ${s.seq} does not follow the seal before it: a seal was edited, removed or reordered`,
    );
  }
  const continues =
    pos.atHi === null
      ? s.xid_from === pos.xidTo && s.at_lo === null
      : s.xid_from === pos.xidFrom && s.xid_to === pos.xidTo && s.at_lo === pos.atHi;
  if (!continues) {
    return brokenSeal(`seal ${s.seq} does not cover the range that follows the seal before it`);
  }
  const digests = rows.map((r) => r.digest);
  const stored = s.row_digests;
  const storedCount = Math.floor(stored.length / SHORT_DIGEST);
  for (let i = 0; i < digests.length; i++) {
    const d = digests[i] as Buffer;
    const want = stored.subarray(i * SHORT_DIGEST, (i + 1) * SHORT_DIGEST);
    if (i < storedCount && d.subarray(0, SHORT_DIGEST).equals(want)) continue;
    const why =
      digests.length > storedCount
        ? 'a row was inserted into a sealed range'
        : digests.length < storedCount
          ? 'a sealed row before it was removed'
          : 'the row was edited, or rows were reordered';
    return {
      firstBrokenId: (rows[i] as DigestedRow).id,
      firstBrokenSeal: s.seq,
      reason: `${why} (seal ${s.seq})`,
    };
  }
  if (digests.length < storedCount) {
    return {
      firstBrokenId: s.last_id,
      firstBrokenSeal: s.seq,
      reason: `the last ${storedCount - digests.length} row(s) of seal ${s.seq} were removed`,
    };
  }
  const want = sealHash(s.prev_hash, headerOf(s), digests);
  if (s.hash.length !== 32 || !s.hash.equals(want) || storedCount !== s.row_count) {
    return brokenSeal(`seal ${s.seq} was edited (its hash does not match its rows)`);
  }
  return null;
}

/** The position after a seal that checkSeal accepted. */
export const positionAfter = (s: StoredSeal): ChainPosition => ({
  seq: BigInt(s.seq),
  hash: s.hash,
  xidFrom: s.xid_from,
  xidTo: s.xid_to,
  atHi: s.at_hi,
});

/** Rows fall into seals by xid range and UTC day: bounds are whole days, so the date decides. */
export function inSeal(
  r: Pick<SealedRowContent, 'xid' | 'at_text'>,
  s: Pick<StoredSeal, 'xid_from' | 'xid_to' | 'at_lo' | 'at_hi'>,
): boolean {
  const x = BigInt(r.xid);
  if (x < BigInt(s.xid_from) || x >= BigInt(s.xid_to)) return false;
  const day = r.at_text.slice(0, 10);
  if (s.at_lo !== null && day < s.at_lo.slice(0, 10)) return false;
  if (s.at_hi !== null && day >= s.at_hi.slice(0, 10)) return false;
  return true;
}
