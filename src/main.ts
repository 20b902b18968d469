import { createServer } from 'node:net';
import { resolve } from 'node:path';
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { KeyCheckError } from './crypto/canary.js';
import { DataDirLockedError } from './db/data-dir-lock.js';
import { DatabaseMissingError, DatabaseUnreachableError, EXIT_DATABASE_UNREACHABLE } from './db/wait.js';
import { buildMetricsApp } from './http/metrics.js';
import { createLogger, jsonDestination } from './logger.js';
import { openRuntime } from './runtime.js';

/** PORT (or METRICS_PORT) is taken by another process: documented in the README. */
const EXIT_PORT_IN_USE = 98; // Linux's errno for EADDRINUSE, easy to recognise

/**
 * Binds and releases `port` before any start-up work, so a port that is taken stops the
 * process at once, before keys are generated or a migration runs: a second `npm start`
 * used to create keys and migrate (seconds of PGlite) only to die with a stack trace.
 * The real listen still reports a port taken in between (see listenOrExit).
 */
function probePort(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => done(err));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => done(undefined)));
  });
}

function portMessage(err: NodeJS.ErrnoException, host: string, port: number, variable: string): string {
  if (err.code === 'EADDRINUSE')
    return `port ${port} is in use on ${host}; set ${variable} to a free port (or stop the process holding it)`;
  if (err.code === 'EACCES')
    return `port ${port} on ${host} needs privileges this process does not have; set ${variable} to a port above 1023`;
  return `cannot listen on ${host}:${port} (${err.code ?? err.message}); check HOST and ${variable}`;
}

async function exitIfPortTaken(host: string, port: number | undefined, variable: string) {
  if (port === undefined) return;
  const err = await probePort(host, port);
  if (!err) return;
  process.stderr.write(`${portMessage(err, host, port, variable)}\n`);
  process.exit(err.code === 'EADDRINUSE' ? EXIT_PORT_IN_USE : 78);
}

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
  await exitIfPortTaken(config.host, config.port, 'PORT');
  await exitIfPortTaken(config.host, config.metricsPort, 'METRICS_PORT');
  const pretty = await prettyDestination(config.nodeEnv);
  const logger = createLogger(config.logLevel, pretty ?? jsonDestination(config.logBufferBytes));
  let runtime: Awaited<ReturnType<typeof openRuntime>>;
  try {
    runtime = await openRuntime(config, logger, { role: 'server' });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KeyCheckError || err instanceof DatabaseMissingError) {
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
  const app = await buildApp({ ...runtime, logger, quietProbes: pretty !== undefined });
  const metricsApp = config.metricsPort === undefined ? undefined : buildMetricsApp(app);

  closeWithGrace({ delay: 10_000, logger }, async ({ signal, err }) => {
    if (err) logger.error({ errName: (err as Error).name }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await metricsApp?.close();
    await app.close(); // stops accepting, lets in-flight requests finish
    await runtime.close();
  });

  const listenOrExit = async (listen: () => Promise<string>, port: number, variable: string) => {
    try {
      return await listen();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (!e.code) throw err;
      // Taken between the probe and now: the same message, after closing what start-up opened.
      process.stderr.write(`${portMessage(e, config.host, port, variable)}\n`);
      await app.close().catch(() => {});
      await runtime.close().catch(() => {});
      process.exit(e.code === 'EADDRINUSE' ? EXIT_PORT_IN_USE : 78);
    }
  };
  const url = await listenOrExit(
    () => app.listen({ host: config.host, port: config.port }),
    config.port,
    'PORT',
  );
  if (metricsApp && config.metricsPort !== undefined) {
    const port = config.metricsPort;
    const at = await listenOrExit(() => metricsApp.listen({ host: config.host, port }), port, 'METRICS_PORT');
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
  if (process.stdout.isTTY) process.stdout.write(readyBanner(url, config));
}

/**
 * What a developer at a terminal needs next, once: where the API and the console are and
 * how to get a token for them. Not logged (it is not an event), and not written when stdout
 * is a file or a pipe.
 */
function readyBanner(url: string, config: ReturnType<typeof loadConfig>): string {
  const dataDirPrefix =
    config.jwt.secret === undefined && resolve(config.dataDir) !== resolve('./data')
      ? `DATA_DIR=${config.dataDir} `
      : '';
  const token =
    config.jwt.publicKey && !config.jwt.secret
      ? 'tokens: sign RS256/ES256 tokens with the private key matching JWT_PUBLIC_KEY'
      : `a token: ${dataDirPrefix}npm run -s token -- --sub NAME${config.rootAdmin ? ' (or log in on the console)' : ''}`;
  return `\nSecrets service ready at ${url}\n  console: ${url}/console\n  API docs: ${url}/docs\n  ${token}\n\n`;
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
      // One line per request (src/http/access-log.ts's fields folded into the message);
      // pretty-printed as objects, each request took about a dozen lines.
      ignore: 'pid,hostname,service,reqId,req,res,responseTime,rejected',
      singleLine: true,
      messageFormat: (log, messageKey) => {
        const req = log.req as { method?: string; url?: string } | undefined;
        const res = log.res as { statusCode?: number } | undefined;
        const msg = String(log[messageKey] ?? '');
        if (!req || !res) return msg;
        const ms = typeof log.responseTime === 'number' ? ` ${log.responseTime.toFixed(1)} ms` : '';
        const rejected = typeof log.rejected === 'string' ? ` ${log.rejected}` : '';
        return `${req.method} ${req.url} ${res.statusCode}${ms}${rejected}${msg === 'request completed' ? '' : ` ${msg}`}`;
      },
    });
  } catch {
    return undefined;
  }
}

main().catch((err) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
