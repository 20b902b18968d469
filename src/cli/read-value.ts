import { UsageError } from './exit-codes.js';
import { readFile } from './fs.js';

/**
 * Reads a secret value from a file or stdin (never argv: argv is visible to every local
 * user in ps and /proc, and lands in shell history). One trailing newline is dropped,
 * because `echo v | secrets set K` and editors add one; --raw keeps the bytes exact.
 */
export async function readValue(opts: {
  file?: string | undefined;
  raw?: boolean | undefined;
  /** On a terminal: ask with this prompt, without echoing what is typed. */
  prompt?: string | undefined;
}): Promise<string> {
  let buf: Buffer;
  if (opts.file !== undefined) {
    buf = await readFile(opts.file === '-' ? '/dev/stdin' : opts.file);
  } else if (process.stdin.isTTY && opts.prompt) {
    buf = Buffer.from(await promptHidden(opts.prompt), 'utf8');
  } else {
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

/**
 * Reads one line from the terminal without echoing it (raw mode, so nothing is shown;
 * backspace edits, Ctrl-C aborts). Hand-written: the few lines it takes are less than a
 * prompt library, and node:readline has no hidden mode.
 */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let value = '';
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
