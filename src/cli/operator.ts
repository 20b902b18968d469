import type { Command } from 'commander';

/**
 * Operator commands: they act on the database and keys directly (not through the API), so
 * they read the server's own configuration (DATABASE_URL, ENCRYPTION_KEY, JWT_SECRET,
 * DATA_DIR...). Each is imported only when used, so the API commands start fast.
 */
export function addOperatorCommands(program: Command): void {
  program
    .command('serve')
    .description('start the secrets server (configured by the environment: PORT, HOST, DATABASE_URL, ...)')
    .option('--port <port>', 'listen on this port (overrides PORT)')
    .option('--host <host>', 'listen on this address (overrides HOST)')
    .action(async (o: { port?: string; host?: string }) => {
      if (o.port) process.env.PORT = o.port;
      if (o.host) process.env.HOST = o.host;
      await import('../main.js'); // runs until a signal; handles its own shutdown
    });

  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .action(async () => {
      await import('./migrate.js');
    });

  program
    .command('token')
    .description('print an admin JWT signed with JWT_SECRET (or the one generated in DATA_DIR)')
    .option('--sub <name>', 'subject, recorded as lastUsedBy', 'cli')
    .option('--ttl <ttl>', 'lifetime: seconds or 15m, 1h, 7d', '1h')
    .option('--role <role>', 'role claim (default: ADMIN_ROLE)')
    .action(async (o: { sub: string; ttl: string; role?: string }) => {
      const { tokenCommand } = await import('./token.js');
      await tokenCommand(['--sub', o.sub, '--ttl', o.ttl, ...(o.role ? ['--role', o.role] : [])]);
    });

  // rewrap: register `secrets rewrap` here (lazy import of ./rewrap.js, as above) once the
  // key-rotation command exists; it belongs with the operator commands, not the API ones.
}
