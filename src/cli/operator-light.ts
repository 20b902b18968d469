import type { Command } from 'commander';
import { UsageError } from './exit-codes.js';

/**
 * The light CLI package (packages/cli) ships without the server: its build puts this file in
 * place of operator.ts, so serve, migrate, token and rewrap say where they live instead of
 * being unknown commands.
 */
export function addOperatorCommands(program: Command): void {
  for (const name of ['serve', 'migrate', 'token', 'rewrap']) {
    program
      .command(name, { hidden: true })
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new UsageError(
          `${name} is an operator command: it comes with the server package (npm install secrets-service, then npx secrets ${name})`,
        );
      });
  }
}
