/**
 * The one home of what request-derived text may reach SQL as. PostgreSQL's text cannot hold
 * NUL (it refuses the statement, 22021), an unpaired UTF-16 surrogate cannot be encoded as
 * UTF-8 without being silently replaced, and an indexed column refuses a row past its index
 * size. Two uses:
 *
 * - at the edge, `isStorableText` refuses a field that cannot be stored (a 400 from the
 *   route schema, src/http/schemas.ts `storable`), so nothing is changed;
 * - in the audit trail, `recordedText` turns whatever a refused request sent (a path key, a
 *   query value, an actor's subject) into an escaped, bounded form that any text column can
 *   hold, so the refusal still leaves its row and one caller's bytes can never fail a
 *   group-committed batch that other callers' rows share (src/audit/writer.ts).
 *
 * Layer-neutral (no zod): the audit repository and the writer use it.
 */

/** Text PostgreSQL stores exactly as sent: no NUL, no unpaired surrogate. */
export const isStorableText = (s: string): boolean => !s.includes('\u0000') && s.isWellFormed();

/** Longest text an audit row's free-text column records, in characters (escapes included). */
export const RECORDED_TEXT_MAX = 256;

// Controls (C0, DEL, C1), the backslash that introduces our escapes, and UTF-16 surrogates
// (paired ones are skipped below: they are one code point). Anything else is kept as sent.
const escaped = (unit: number): boolean =>
  unit < 0x20 || unit === 0x5c || (unit >= 0x7f && unit <= 0x9f) || (unit >= 0xd800 && unit <= 0xdfff);

const plain = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) if (escaped(s.charCodeAt(i))) return false;
  return true;
};

const escapeCodePoint = (c: string): string => {
  if (c === '\\') return '\\\\';
  if (c.length === 2) return c; // a well-formed surrogate pair: an ordinary character
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
};

/**
 * `s` as an audit row records it: unchanged when it is plain printable text within the
 * bound (every valid secret key, actor and request id), otherwise with controls, backslashes
 * and unpaired surrogates written as `\uXXXX` / `\\` and cut at RECORDED_TEXT_MAX characters
 * with a marker giving the original length. Deterministic, so equal input records equally.
 */
export function recordedText(s: string, max = RECORDED_TEXT_MAX): string {
  if (s.length <= max && plain(s)) return s;
  let out = '';
  const marker = `...[${s.length} chars]`;
  for (const c of s) {
    const piece = escaped(c.charCodeAt(0)) ? escapeCodePoint(c) : c;
    if (out.length + piece.length > max - marker.length) return out + marker;
    out += piece;
  }
  return out;
}

/** recordedText for a nullable column. */
export const recordedOrNull = (s: string | null | undefined): string | null =>
  s === null || s === undefined ? null : recordedText(s);
