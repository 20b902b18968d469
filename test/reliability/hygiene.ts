import { expect } from 'vitest';
import type { Queryable } from '../../src/db/database.js';
import { capturedLogs, issuedValues } from '../helpers/secrets.js';

/**
 * Log and error-body hygiene for long runs. test/setup.ts scans every log line against
 * every issued value once, at the end of a file; a long fuzz run issues tens of thousands
 * of values and lines, so suites call scanLogs() every batch: it checks the lines written
 * since the last call against the values issued since then (plus every token, forever),
 * then forgets both, keeping memory and time flat.
 */
const forbidden = new Set<string>();
let scannedLines = 0;

/** Registers a string (a token, a key's material) that must never appear in any log line. */
export function forbid(s: string): string {
  forbidden.add(s);
  return s;
}

export function scanLogs(): { lines: number } {
  const leaks: string[] = [];
  const needles = [...issuedValues, ...forbidden];
  for (const line of capturedLogs) {
    for (const v of needles)
      if (line.includes(v)) leaks.push(`${v.slice(0, 24)}... in ${line.slice(0, 200)}`);
  }
  expect(leaks, 'secret values or tokens found in log lines').toEqual([]);
  scannedLines += capturedLogs.length;
  capturedLogs.length = 0;
  issuedValues.clear();
  return { lines: scannedLines };
}

/** An error body must not echo any of the given values (request values, tokens). */
export function expectNoEcho(body: string, values: Iterable<string>): void {
  for (const v of values) {
    if (v.length >= 8) expect(body.includes(v), 'a value or token echoed in a response body').toBe(false);
  }
  for (const v of forbidden) expect(body.includes(v), 'a token echoed in a response body').toBe(false);
}

/**
 * The audit log, in plain SQL with every column as text (bytea as hex, so a value stored
 * as bytes is caught too), must hold none of the values issued and tokens forbidden so far
 * (plus `extra`). Call it before scanLogs(), which forgets the issued values.
 */
export async function scanAuditLog(db: Queryable, extra: Iterable<string> = []): Promise<{ rows: number }> {
  const rows = await db.query<{ line: string }>('SELECT a::text AS line FROM audit_log a');
  const needles = [...issuedValues, ...forbidden, ...extra].filter((v) => v.length >= 8);
  const leaks: string[] = [];
  for (const { line } of rows) {
    for (const v of needles) {
      if (line.includes(v) || line.includes(Buffer.from(v, 'utf8').toString('hex')))
        leaks.push(`${v.slice(0, 24)}... in audit row ${line.slice(0, 200)}`);
    }
  }
  expect(leaks, 'secret values or tokens found in the audit log').toEqual([]);
  return { rows: rows.length };
}
