import { type Command, Option } from 'commander';
import { type Format, listing } from './output.js';

/**
 * The commands every resource group of the CLI has (trust, env, webhooks), declared once:
 * a listing with --format and a delete that names what it deleted.
 */

/** --format of a listing: a table on a terminal, JSON, or else one line an item (`lines`). */
export const listFormat = (lines: string) =>
  new Option(
    '--format <format>',
    `output format: table, json (default: table on a terminal, else ${lines})`,
  ).choices(['table', 'json']);

/**
 * Makes `cmd` (named, described, with its arguments) a listing: `fetch` gets the arguments,
 * and the items are printed as `columns` (table), JSON, or `line` each.
 */
export function listAction<T>(
  cmd: Command,
  o: {
    lines: string;
    tty: () => boolean;
    fetch: (...args: string[]) => Promise<readonly T[]>;
    columns: Record<string, (item: T) => string>;
    line: (item: T) => string;
  },
): Command {
  return cmd.addOption(listFormat(o.lines)).action(async (...args: unknown[]) => {
    const n = cmd.registeredArguments.length;
    const { format } = args[n] as { format?: Format };
    const list = await o.fetch(...(args.slice(0, n) as string[]));
    process.stdout.write(listing(list, format ?? (o.tty() ? 'table' : undefined), o.columns, o.line));
  });
}

/** `<group> delete <ARG>`: removes one and says `deleted <noun> <arg>`. */
export function deleteCommand(
  group: Command,
  o: {
    description: string;
    argument: string;
    noun: string;
    remove: (id: string) => Promise<unknown>;
    status: (line: string) => void;
  },
): Command {
  return group
    .command('delete')
    .description(o.description)
    .argument(o.argument)
    .action(async (id: string) => {
      await o.remove(id);
      o.status(`deleted ${o.noun} ${id}`);
    });
}
