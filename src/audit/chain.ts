import { createHash } from 'node:crypto';
import type { AuditRow } from './repository.js';

/** The chain starts from 32 zero bytes (the head row the migration inserts). */
export const GENESIS_HASH = Buffer.alloc(32);

/**
 * The canonical content of a row: a JSON array in a fixed field order, with the time as
 * the database renders it to the microsecond (a JS Date would drop the microseconds).
 * seal_seq is part of it, so moving a row in the chain changes its hash.
 */
export function canonicalRow(r: AuditRow, sealSeq: string): string {
  return JSON.stringify([
    r.id,
    sealSeq,
    r.at_text,
    r.actor,
    r.action,
    r.key,
    r.version,
    r.outcome,
    r.request_id,
    r.client_ip,
  ]);
}

/** hash = sha256(previous hash || canonical row content). */
export function chainHash(prev: Buffer, r: AuditRow, sealSeq: string): Buffer {
  return createHash('sha256').update(prev).update(canonicalRow(r, sealSeq), 'utf8').digest();
}
