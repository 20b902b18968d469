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

  program
    .command('rewrap')
    .description(
      're-wrap every stored data key to the active key id (ENCRYPTION_KEYS), in batches; resumable',
    )
    .option('--batch-size <n>', 'rows per batch, 1..5000', '500')
    .option('--pause-ms <ms>', 'sleep between batches', '0')
    .action(async (o: { batchSize: string; pauseMs: string }) => {
      // rewrap.ts is also `npm run rewrap` and parses process.argv itself: hand it only its flags.
      process.argv = [
        process.argv[0] ?? 'node',
        'rewrap',
        '--batch-size',
        o.batchSize,
        '--pause-ms',
        o.pauseMs,
      ];
      await import('./rewrap.js');
    });
}
