import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type Break,
  type ChainPosition,
  checkSeal,
  type DigestedRow,
  inSeal,
  positionAfter,
  rowDigest,
  type SealedRowContent,
  type StoredSeal,
} from './chain.js';

/**
 * An archive of audit partitions: rows.jsonl (every row, canonical fields, id order),
 * seals.jsonl (the seals covering exactly those rows, bytea as hex) and manifest.json with
 * the boundary positions of the chain: where it stood before the first archived seal (the
 * previous seal's hash) and after the last one. Verifiable on its own (verifyArchive) and,
 * several archives in a row, against each other (verifyArchiveDir).
 */
export const ARCHIVE_FORMAT = 'secrets-audit-archive/1';

export interface PositionJson {
  seq: string;
  hash: string;
  xidFrom: string;
  xidTo: string;
  atHi: string | null;
}

export interface Manifest {
  format: string;
  partitions: string[];
  /** Every row with at before this instant was archived. */
  before: string;
  start: PositionJson;
  end: PositionJson;
  rowCount: number;
  sealCount: number;
  files: Record<string, string>;
  createdAt: string;
}

export const positionJson = (p: ChainPosition): PositionJson => ({
  seq: String(p.seq),
  hash: p.hash.toString('hex'),
  xidFrom: p.xidFrom,
  xidTo: p.xidTo,
  atHi: p.atHi,
});

const positionFrom = (p: PositionJson): ChainPosition => ({
  seq: BigInt(p.seq),
  hash: Buffer.from(p.hash, 'hex'),
  xidFrom: p.xidFrom,
  xidTo: p.xidTo,
  atHi: p.atHi,
});

type SealJson = Omit<StoredSeal, 'row_digests' | 'prev_hash' | 'hash'> & {
  row_digests: string;
  prev_hash: string;
  hash: string;
};

const sealToJson = (s: StoredSeal): SealJson => ({
  ...s,
  row_digests: s.row_digests.toString('hex'),
  prev_hash: s.prev_hash.toString('hex'),
  hash: s.hash.toString('hex'),
});

const sealFromJson = (j: SealJson): StoredSeal => ({
  ...j,
  row_digests: Buffer.from(j.row_digests, 'hex'),
  prev_hash: Buffer.from(j.prev_hash, 'hex'),
  hash: Buffer.from(j.hash, 'hex'),
});

/** Writes lines to a file, hashing them, and fsyncs it on close. */
async function jsonLinesWriter(path: string) {
  const fh: FileHandle = await open(path, 'w', 0o600);
  const hash = createHash('sha256');
  return {
    async write(objs: unknown[]) {
      if (objs.length === 0) return;
      const text = `${objs.map((o) => JSON.stringify(o)).join('\n')}\n`;
      hash.update(text);
      await fh.write(text);
    },
    async close(): Promise<string> {
      await fh.sync();
      await fh.close();
      return hash.digest('hex');
    },
  };
}

async function fsyncDir(dir: string) {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes an archive into `${root}/${name}` (through a temporary directory renamed into place,
 * every file and both directories fsynced), then reads it back and verifies it.
 */
export async function writeArchive(
  root: string,
  name: string,
  m: Omit<Manifest, 'format' | 'files' | 'rowCount' | 'sealCount' | 'createdAt'>,
  seals: StoredSeal[],
  rowPages: AsyncIterable<SealedRowContent[]>,
): Promise<{ dir: string; manifest: Manifest }> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const tmp = join(root, `.tmp-${name}`);
  const dir = join(root, name);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { mode: 0o700 });
  const rows = await jsonLinesWriter(join(tmp, 'rows.jsonl'));
  let rowCount = 0;
  for await (const page of rowPages) {
    await rows.write(page);
    rowCount += page.length;
  }
  const sealsFile = await jsonLinesWriter(join(tmp, 'seals.jsonl'));
  await sealsFile.write(seals.map(sealToJson));
  const manifest: Manifest = {
    format: ARCHIVE_FORMAT,
    ...m,
    rowCount,
    sealCount: seals.length,
    files: { 'rows.jsonl': await rows.close(), 'seals.jsonl': await sealsFile.close() },
    createdAt: new Date().toISOString(),
  };
  const mf = await jsonLinesWriter(join(tmp, 'manifest.json'));
  await mf.write([manifest]);
  await mf.close();
  await fsyncDir(tmp);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  await fsyncDir(root);
  const check = await verifyArchive(dir);
  if (!check.intact) throw new Error(`the archive written to ${dir} does not verify: ${check.reason}`);
  return { dir, manifest };
}

export interface ArchiveVerifyResult {
  intact: boolean;
  dir: string;
  rows: number;
  seals: number;
  firstBrokenId: string | null;
  firstBrokenSeal: string | null;
  reason: string | null;
  manifest: Manifest | null;
}

/** Finds a row's seal by binary search on the (ascending) xid ranges, then by day. */
function sealLocator(seals: StoredSeal[]) {
  const from = seals.map((s) => BigInt(s.xid_from));
  return (r: Pick<SealedRowContent, 'xid' | 'at_text'>): number => {
    const x = BigInt(r.xid);
    let lo = 0;
    let hi = from.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((from[mid] as bigint) <= x) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    for (let i = found; i >= 0 && from[i] === from[found]; i--)
      if (inSeal(r, seals[i] as StoredSeal)) return i;
    return -1;
  };
}

async function* jsonLines<T>(path: string): AsyncGenerator<{ line: number; value: T }> {
  const rl = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  for await (const text of rl) {
    line += 1;
    if (text.trim() === '') continue;
    yield { line, value: JSON.parse(text) as T };
  }
}

/** Verifies one archive directory on its own: every row in exactly one seal, the seals chained from start to end. */
export async function verifyArchive(dir: string): Promise<ArchiveVerifyResult> {
  const result = (r: Partial<ArchiveVerifyResult> & { reason: string | null }): ArchiveVerifyResult => ({
    intact: r.reason === null,
    dir,
    rows: 0,
    seals: 0,
    firstBrokenId: null,
    firstBrokenSeal: null,
    manifest: null,
    ...r,
  });
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    return result({ reason: `manifest.json cannot be read: ${(err as Error).message}` });
  }
  if (manifest.format !== ARCHIVE_FORMAT)
    return result({ manifest, reason: `unknown format ${manifest.format}` });
  const seals: StoredSeal[] = [];
  try {
    for await (const { value } of jsonLines<SealJson>(join(dir, 'seals.jsonl')))
      seals.push(sealFromJson(value));
  } catch (err) {
    return result({ manifest, reason: `seals.jsonl cannot be read: ${(err as Error).message}` });
  }
  const locate = sealLocator(seals);
  // Rows are assigned to seals as they stream by; only ids and digests are kept.
  const perSeal: DigestedRow[][] = seals.map(() => []);
  let rows = 0;
  try {
    for await (const { line, value } of jsonLines<SealedRowContent>(join(dir, 'rows.jsonl'))) {
      rows += 1;
      const i = locate(value);
      if (i < 0) {
        return result({
          manifest,
          rows,
          firstBrokenId: String(value.id),
          reason: `rows.jsonl line ${line}: the row lies in no archived seal (inserted, or its xid or time edited)`,
        });
      }
      (perSeal[i] as DigestedRow[]).push({ id: value.id, digest: rowDigest(value) });
    }
  } catch (err) {
    return result({ manifest, rows, reason: `rows.jsonl cannot be read: ${(err as Error).message}` });
  }
  let pos = positionFrom(manifest.start);
  for (let i = 0; i < seals.length; i++) {
    const s = seals[i] as StoredSeal;
    const b: Break | null = checkSeal(pos, s, perSeal[i] as DigestedRow[]);
    if (b) return result({ manifest, rows, seals: i, ...b });
    pos = positionAfter(s);
  }
  const end = positionJson(pos);
  if (end.seq !== manifest.end.seq || end.hash !== manifest.end.hash) {
    return result({
      manifest,
      rows,
      seals: seals.length,
      firstBrokenSeal: String(pos.seq + 1n),
      reason: `the seals end at ${end.seq} but the manifest says ${manifest.end.seq}: seals were removed from its end`,
    });
  }
  return result({ manifest, rows, seals: seals.length, reason: null });
}

/**
 * Verifies a directory of archives (or one archive): each on its own, and each starting
 * where the one before it ended.
 */
export async function verifyArchiveDir(dir: string): Promise<ArchiveVerifyResult[]> {
  const isOne = await stat(join(dir, 'manifest.json')).then(
    () => true,
    () => false,
  );
  if (isOne) return [await verifyArchive(dir)];
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name);
  const results = await Promise.all(names.map((n) => verifyArchive(join(dir, n))));
  results.sort((a, b) => Number(BigInt(a.manifest?.start.seq ?? '0') - BigInt(b.manifest?.start.seq ?? '0')));
  for (let i = 1; i < results.length; i++) {
    const prev = results[i - 1] as ArchiveVerifyResult;
    const cur = results[i] as ArchiveVerifyResult;
    if (cur.intact && prev.manifest && cur.manifest && cur.manifest.start.hash !== prev.manifest.end.hash) {
      results[i] = {
        ...cur,
        intact: false,
        firstBrokenSeal: String(BigInt(prev.manifest.end.seq) + 1n),
        reason: `does not start where ${prev.dir} ends (seal ${prev.manifest.end.seq}): an archive is missing or was altered`,
      };
    }
  }
  return results;
}
