/**
 * Pure formatters for exported secrets. Keys match ^[A-Z0-9_]+$ so they never need quoting;
 * values are arbitrary text and are quoted so that a parser gives back the exact bytes.
 */

export type ExportedSecrets = Record<string, string>;

/**
 * dotenv quoting that loads byte-exact in the three readers of a .env file: the `dotenv`
 * package, Docker Compose (compose-go's dotenv parser, following Compose's documented
 * rules: single-quoted values are literal, double-quoted ones expand \-escapes and $VARS)
 * and a POSIX shell (`set -a; . ./.env`: single quotes literal; double quotes expand $,
 * backticks and \).
 * - Single quotes whenever the value holds no ' : literal everywhere, newlines included.
 *   Not when it ends in a backslash (Compose and dotenv read \' as an escaped quote).
 * - Else double quotes, only for a value with none of " $ ` \ (nothing any of the three
 *   expands inside double quotes).
 * - A CR never: the dotenv package turns CRLF and CR into LF before parsing.
 * Returns undefined when no quoting is exact in all three: the caller refuses (naming the
 * key, never the value) rather than write a file that loads differently somewhere.
 */
export function dotenvQuote(value: string): string | undefined {
  if (value.includes('\r')) return undefined;
  if (!value.includes("'") && !value.endsWith('\\')) return `'${value}'`;
  if (!/["$`\\]/.test(value)) return `"${value}"`;
  return undefined;
}

/** A name every shell and dotenv reader takes as a variable (keys may start with a digit). */
export const isEnvName = (key: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(key);

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
