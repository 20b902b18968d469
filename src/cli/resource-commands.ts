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

/** A table column: a text field shown as it is, or how to show the item. */
export type Column<T> = { [K in keyof T]: T[K] extends string ? K : never }[keyof T] | ((item: T) => string);

/**
 * The listing and delete commands of the CLI's resource groups, bound to the CLI's client,
 * terminal and status line.
 */
export function resourceCommands<C>(deps: {
  client: () => Promise<C>;
  tty: () => boolean;
  status: (line: string) => void;
}) {
  return {
    /**
     * Makes `cmd` (named, described, with its arguments) a listing: `fetch` gets the client
     * and the arguments, and the items are printed as `columns` (table), JSON, or one line
     * each: the first column, the field that names an item, or `line` where a line says more.
     */
    list<T>(
      cmd: Command,
      o: {
        fetch: (client: C, ...args: string[]) => Promise<readonly T[]>;
        line?: (item: T) => string;
        columns: Record<string, Column<T>>;
      },
    ): Command {
      const cells = Object.fromEntries(
        Object.entries(o.columns).map(([name, c]) => [
          name,
          typeof c === 'function' ? c : (x: T) => x[c] as string,
        ]),
      );
      const key = Object.values(o.columns)[0];
      if (typeof key !== 'string') throw new Error(`${cmd.name()}: the first column must be a field`);
      const line = o.line ?? ((x: T) => x[key] as string);
      return cmd.addOption(listFormat(`one ${key} a line`)).action(async (...args: unknown[]) => {
        const n = cmd.registeredArguments.length;
        const { format } = args[n] as { format?: Format };
        const list = await o.fetch(await deps.client(), ...(args.slice(0, n) as string[]));
        process.stdout.write(listing(list, format ?? (deps.tty() ? 'table' : undefined), cells, line));
      });
    },

    /** `<group> delete <ARG>`: removes one and says `deleted <noun> <arg>`. */
    delete(
      group: Command,
      o: {
        description: string;
        argument: string;
        noun: string;
        remove: (client: C, id: string) => Promise<unknown>;
      },
    ): Command {
      return group
        .command('delete')
        .description(o.description)
        .argument(o.argument)
        .action(async (id: string) => {
          await o.remove(await deps.client(), id);
          deps.status(`deleted ${o.noun} ${id}`);
        });
    },
  };
}
