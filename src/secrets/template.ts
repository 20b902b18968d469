/**
 * Template references, as InsForge documents them: {{Secrets.NAME}}, the name case
 * insensitive ({{secrets.mysecret}} works too). Whitespace inside the braces is allowed.
 * Anything between `{{ Secrets.` and `}}` is captured, so a malformed name is reported
 * as unresolved instead of silently left in the output.
 */
const REFERENCE = /\{\{\s*secrets\.([^{}\s]*)\s*\}\}/gi;
// ASCII only before upper-casing: 'ß'.toUpperCase() is 'SS', which would name another key.
const NAME = /^[A-Za-z0-9_]{1,128}$/;

/** The keys a template refers to (upper-cased) and the references that cannot name a key. */
export function templateReferences(template: string): { keys: string[]; invalid: string[] } {
  const keys = new Set<string>();
  const invalid = new Set<string>();
  for (const m of template.matchAll(REFERENCE)) {
    const name = m[1] ?? '';
    if (NAME.test(name)) keys.add(name.toUpperCase());
    else invalid.add(name);
  }
  return { keys: [...keys], invalid: [...invalid] };
}

/**
 * One pass over the template: values are inserted as they are and never scanned again,
 * so a value containing {{Secrets.X}} stays literal (no recursive expansion).
 */
export function renderTemplate(template: string, values: ReadonlyMap<string, string>): string {
  return template.replace(REFERENCE, (whole, name: string) => values.get(name.toUpperCase()) ?? whole);
}

/**
 * The size in bytes of UTF-8 that renderTemplate would produce, counted reference by
 * reference without building it, so an amplifying template (one large value referenced
 * thousands of times) is refused before any memory is spent on it. Stops counting once
 * past `limit`.
 */
export function renderedBytes(template: string, values: ReadonlyMap<string, string>, limit: number): number {
  const sizes = new Map<string, number>();
  for (const [k, v] of values) sizes.set(k, Buffer.byteLength(v, 'utf8'));
  let total = Buffer.byteLength(template, 'utf8');
  for (const m of template.matchAll(REFERENCE)) {
    const size = sizes.get((m[1] ?? '').toUpperCase());
    if (size === undefined) continue;
    total += size - Buffer.byteLength(m[0], 'utf8');
    if (total > limit) return total;
  }
  return total;
}
