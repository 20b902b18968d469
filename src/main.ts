import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { KeyCheckError } from './crypto/canary.js';
import { DataDirLockedError } from './db/data-dir-lock.js';
import { DatabaseUnreachableError, EXIT_DATABASE_UNREACHABLE } from './db/wait.js';
import { buildMetricsApp } from './http/metrics.js';
import { createLogger, jsonDestination } from './logger.js';
import { openRuntime } from './runtime.js';

/** Process entry: the only place that reads the environment, listens and handles signals. */
async function main() {
  const started = performance.now();
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(78); // EX_CONFIG
  }
  const logger = createLogger(
    config.logLevel,
    (await prettyDestination(config.nodeEnv)) ?? jsonDestination(config.logBufferBytes),
  );
  let runtime: Awaited<ReturnType<typeof openRuntime>>;
  try {
    runtime = await openRuntime(config, logger, { role: 'server' });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KeyCheckError) {
      logger.fatal(err.message);
      process.stderr.write(`${err.message}\n`);
      process.exit(78);
    }
    if (err instanceof DataDirLockedError) {
      logger.fatal(err.message);
      process.stderr.write(`${err.message}\n`);
      process.exit(75); // EX_TEMPFAIL: try again once the holder has stopped
    }
    if (err instanceof DatabaseUnreachableError) {
      logger.fatal({ database: err.target }, 'database unreachable at start-up');
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_DATABASE_UNREACHABLE);
    }
    throw err;
  }
  const app = await buildApp({ ...runtime, logger });
  const metricsApp = config.metricsPort === undefined ? undefined : buildMetricsApp(app);

  closeWithGrace({ delay: 10_000, logger }, async ({ signal, err }) => {
    if (err) logger.error({ errName: (err as Error).name }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await metricsApp?.close();
    await app.close(); // stops accepting, lets in-flight requests finish
    await runtime.close();
  });

  await app.listen({ host: config.host, port: config.port });
  if (metricsApp) {
    const at = await metricsApp.listen({ host: config.host, port: config.metricsPort });
    logger.info({ url: `${at}/metrics` }, 'metrics listener ready');
  }
  logger.info(
    {
      backend: runtime.db.kind,
      startupMs: Math.round(performance.now() - started),
      activeKid: runtime.keyring.activeKid,
    },
    'secrets service ready',
  );
}

/**
 * Human-readable logs for a developer at a terminal: pino-pretty (a development
 * dependency) when stdout is a TTY and NODE_ENV is not production; JSON otherwise, and
 * whenever pino-pretty is not installed (the published package, the image). Redaction
 * runs before the stream, so pretty lines are censored like JSON ones.
 */
async function prettyDestination(nodeEnv: string) {
  if (!process.stdout.isTTY || nodeEnv === 'production') return undefined;
  try {
    const { default: pretty } = await import('pino-pretty');
    return pretty({
      colorize: true,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,service',
    });
  } catch {
    return undefined;
  }
}

main().catch((err) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
