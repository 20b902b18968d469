import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Database } from './database.js';
import { parseDatabaseUrl } from './hosts.js';

/**
 * Start-up: a database container often starts alongside the service, so the first
 * connection is retried with exponential backoff (250 ms doubling to 5 s) for at most
 * DATABASE_CONNECT_TIMEOUT_MS; then the process stops with a message naming host, port,
 * database and the cause (never the password), and exit code 69 (EX_UNAVAILABLE).
 */
export const EXIT_DATABASE_UNREACHABLE = 69;

export class DatabaseUnreachableError extends Error {
  constructor(
    readonly target: string,
    readonly reason: string,
    readonly waitedMs: number,
  ) {
    super(
      `cannot connect to the database ${target} after ${Math.round(waitedMs / 1000)} s: ${reason}\n` +
        '  check DATABASE_URL and that PostgreSQL is running and accepts connections; ' +
        'DATABASE_CONNECT_TIMEOUT_MS sets how long start-up waits for it',
    );
    this.name = 'DatabaseUnreachableError';
  }
}

/**
 * The server answered, and the database named in DATABASE_URL does not exist (SQLSTATE
 * 3D000). Waiting would not help: start-up stops at once (exit 78, a configuration
 * problem) with the command that creates it.
 */
export class DatabaseMissingError extends Error {
  constructor(url: string) {
    let createdb = 'createdb NAME';
    let name = 'named in DATABASE_URL';
    try {
      const parsed = parseDatabaseUrl(url);
      const host = parsed.hosts[0];
      name = `"${parsed.database}"`;
      createdb = [
        'createdb',
        ...(host?.host ? ['-h', host.host, '-p', String(host.port)] : []),
        ...(parsed.user ? ['-U', parsed.user] : []),
        parsed.database,
      ].join(' ');
    } catch {
      // An unparseable URL never reaches a server; keep the generic wording.
    }
    super(
      `the database ${name} does not exist on ${describeDatabase(url)}\n` +
        `  create it (${createdb}) or point DATABASE_URL at an existing database`,
    );
    this.name = 'DatabaseMissingError';
  }
}

const isMissingDatabase = (err: unknown) =>
  ((err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code) === '3D000';

/** host:port[,host:port...]/database as user, from a connection string; never the password. */
export function describeDatabase(url: string): string {
  try {
    return parseDatabaseUrl(url).description;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** The cause in a few words: the error code and message, never the connection string. */
function reasonOf(err: unknown, secret: string | undefined): string {
  // The adapter wraps connection failures (DatabaseUnavailableError): the cause says why.
  const e = ((err as { cause?: unknown }).cause ?? err) as {
    code?: string;
    message?: string;
    errors?: { message?: string }[];
  };
  const message = e.message || e.errors?.map((x) => x.message).join('; ') || String(err);
  const text = e.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
  return secret ? text.split(secret).join('***') : text;
}

export async function waitForDatabase(
  db: Database,
  opts: { url: string; timeoutMs: number; log: Logger },
): Promise<void> {
  const started = Date.now();
  const target = describeDatabase(opts.url);
  let password: string | undefined;
  try {
    password = parseDatabaseUrl(opts.url).password;
  } catch {
    password = undefined;
  }
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await db.query('SELECT 1');
      if (attempt > 1) opts.log.info({ database: target, attempts: attempt }, 'database reachable');
      return;
    } catch (err) {
      if (isMissingDatabase(err)) throw new DatabaseMissingError(opts.url);
      const reason = reasonOf(err, password);
      const waited = Date.now() - started;
      if (waited + delay > opts.timeoutMs) throw new DatabaseUnreachableError(target, reason, waited);
      opts.log.warn(
        { database: target, attempt, retryInMs: delay, reason },
        'database not reachable yet; retrying',
      );
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}
