import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';

/**
 * The CLI's program is built by a function a test can import: importing it parses nothing
 * (this file would otherwise run the CLI on vitest's own argv), and each call builds a
 * program with its own option state.
 */
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Parses argv with the program's exits turned into throws, and collects what it writes. */
async function parse(argv: string[]) {
  const program = buildProgram();
  let out = '';
  const silence = (c: ReturnType<typeof buildProgram>) => {
    const write = (s: string) => {
      out += s;
    };
    c.exitOverride().configureOutput({ writeOut: write, writeErr: write });
    for (const sub of c.commands) silence(sub);
  };
  silence(program);
  const err = await program.parseAsync(['node', 'secrets', ...argv]).then(
    () => undefined,
    (e: unknown) => e as { code?: string },
  );
  return { out, code: err?.code };
}

it('builds the whole program: the API, login and operator commands', () => {
  const names = buildProgram().commands.map((c) => c.name());
  expect(names).toEqual(
    expect.arrayContaining(['get', 'set', 'list', 'import', 'export', 'run', 'login', 'trust']),
  );
  expect(names).toEqual(expect.arrayContaining(['migrate', 'token']));
});

it('each build is a fresh program: options parsed by one do not leak into the next', async () => {
  const first = buildProgram().exitOverride();
  first.parseOptions(['--url', 'http://first.example']);
  expect(first.opts().url).toBe('http://first.example');
  expect(buildProgram().opts().url).toBe(process.env.SECRETS_URL);
});

it('answers --version and an unknown command through commander, without running anything', async () => {
  expect(await parse(['--version'])).toEqual({ out: `${version}\n`, code: 'commander.version' });
  const unknown = await parse(['no-such-command']);
  expect(unknown.code).toBe('commander.unknownCommand');
  expect(unknown.out).toContain("unknown command 'no-such-command'");
});
