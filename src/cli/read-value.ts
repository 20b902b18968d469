import { readFile } from 'node:fs/promises';
import { UsageError } from './exit-codes.js';

/**
 * Reads a secret value from a file or stdin (never argv: argv is visible to every local
 * user in ps and /proc, and lands in shell history). One trailing newline is dropped,
 * because `echo v | secrets set K` and editors add one; --raw keeps the bytes exact.
 */
export async function readValue(opts: {
  file?: string | undefined;
  raw?: boolean | undefined;
}): Promise<string> {
  let buf: Buffer;
  if (opts.file !== undefined) {
    buf = await readFile(opts.file === '-' ? '/dev/stdin' : opts.file);
  } else {
    if (process.stdin.isTTY) {
      process.stderr.write('Reading the value from stdin; end it with Ctrl-D\n');
    }
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    buf = Buffer.concat(chunks);
  }
  let value: string;
  try {
    // fatal: invalid UTF-8 is refused rather than silently replaced with U+FFFD.
    value = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    throw new UsageError('the value is not valid UTF-8 text: store binary data base64-encoded');
  }
  if (!opts.raw) value = value.replace(/\r?\n$/, '');
  if (value.length === 0) throw new UsageError('the value is empty: pipe it on stdin or pass --file PATH');
  return value;
}
