import { isEnvName, shellQuote, toDotenv } from '../secrets/export-format.js';

/** Output helpers shared by the commands: formats, tables, GitHub Actions masking. */
export const FORMATS = ['table', 'json', 'dotenv', 'shell'] as const;
export type Format = (typeof FORMATS)[number];

/**
 * In GitHub Actions (GITHUB_ACTIONS=true), registers every value with the runner's log
 * masking before it is printed or handed to a command. Written to stderr so that stdout
 * stays exactly the value (`X=$(secrets get K)`); the runner reads workflow commands from
 * both streams. A multi-line value is masked line by line (the runner matches per line);
 * % CR and LF are escaped as workflow commands require.
 */
export function maskForActions(values: Iterable<string>, env: NodeJS.ProcessEnv = process.env): void {
  if (env.GITHUB_ACTIONS !== 'true') return;
  const escapeData = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  let out = '';
  for (const v of values) {
    const parts = new Set([v, ...v.split(/\r?\n/)]);
    for (const p of parts) if (p.trim()) out += `::add-mask::${escapeData(p)}\n`;
  }
  if (out) process.stderr.write(out);
}

/** Secrets as dotenv or shell text, skipping (with a warning) keys that are not variable names. */
export function formatValues(
  secrets: Record<string, string>,
  format: 'dotenv' | 'shell',
  warn: (line: string) => void,
): string {
  const usable: Record<string, string> = {};
  for (const [k, v] of Object.entries(secrets)) {
    if (isEnvName(k)) usable[k] = v;
    else warn(`skipping ${k}: not a valid environment variable name (it starts with a digit)`);
  }
  if (format === 'dotenv') return toDotenv(usable);
  return Object.entries(usable)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join('');
}

/** A plain text table (columns padded with spaces), for terminals. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

/**
 * A list as the user asked: JSON, a table (`columns`: each header with its cell), or else
 * one `line` an item (what scripts read).
 */
export function listing<T>(
  list: readonly T[],
  format: Format | undefined,
  columns: Record<string, (item: T) => string>,
  line: (item: T) => string,
): string {
  if (format === 'json') return `${JSON.stringify(list, null, 2)}\n`;
  if (format === 'table') {
    const cells = Object.values(columns);
    return table(
      Object.keys(columns),
      list.map((x) => cells.map((cell) => cell(x))),
    );
  }
  return list.map((x) => `${line(x)}\n`).join('');
}
