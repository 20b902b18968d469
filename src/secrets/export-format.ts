/**
 * Pure formatters for exported secrets. Keys match ^[A-Z0-9_]+$ so they never need quoting;
 * values are arbitrary text and are quoted so that a parser gives back the exact bytes.
 */

export type ExportedSecrets = Record<string, string>;

/**
 * dotenv quoting, chosen per value for the reference parser (the `dotenv` package, which
 * docker compose and most ports follow): inside single quotes and backticks nothing is
 * interpreted (no escapes, no ${} expansion by dotenv-expand), and newlines may appear
 * literally; inside double quotes only \n and \r are unescaped. The parser normalises CRLF
 * and CR to LF before parsing, so a value with a CR needs the double-quoted \r escape.
 * Returns undefined when no quoting round-trips (the value holds ', ` and " together, or a
 * CR with a literal backslash-n/r sequence): the caller refuses rather than alter it.
 */
export function dotenvQuote(value: string): string | undefined {
  const hasCr = value.includes('\r');
  if (!hasCr && !value.includes("'")) return `'${value}'`;
  if (!hasCr && !value.includes('`')) return `\`${value}\``;
  if (!value.includes('"') && !/\\[nr]/.test(value)) {
    return `"${value.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"`;
  }
  return undefined;
}

/** Keys whose values cannot be written as dotenv (see dotenvQuote). */
export function dotenvUnrepresentable(secrets: ExportedSecrets): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => dotenvQuote(v) === undefined)
    .map(([k]) => k);
}

export function toDotenv(secrets: ExportedSecrets): string {
  return Object.entries(secrets)
    .map(([k, v]) => {
      const quoted = dotenvQuote(v);
      if (quoted === undefined) throw new Error(`${k} cannot be written as dotenv`);
      return `${k}=${quoted}\n`;
    })
    .join('');
}

/** POSIX shell single quoting: everything is literal; a ' is closed, escaped and reopened. */
export const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** `export K='v'` lines for `eval "$(secrets export --format shell)"`. */
export function toShell(secrets: ExportedSecrets): string {
  return Object.entries(secrets)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join('');
}
