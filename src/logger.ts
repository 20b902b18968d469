import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * pino JSON logs. Redaction is a second line of defence: no code path logs a value, but
 * should one ever hand a request, body or error to the logger, these paths are censored.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.body',
  'body',
  'value',
  'password',
  'token',
  'accessToken',
  '*.value',
  '*.password',
  '*.token',
  '*.accessToken',
  '*.authorization',
];

const NONE: ReadonlySet<string> = new Set();

/**
 * The URL with only the `logged` query parameters' values: the ones the route's schema
 * declares (collected at registration by src/http/access-log.ts). Any other one (a token
 * pasted as ?access_token=...) is logged by name only, so credentials put in a URL by
 * mistake never reach a log line.
 */
export function safeUrl(url: string, logged: ReadonlySet<string> = NONE): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  const shown = [...params].map(([k, v]) =>
    logged.has(k)
      ? `${encodeURIComponent(k)}=${encodeURIComponent(v)}`
      : `${encodeURIComponent(k)}=[redacted]`,
  );
  return `${url.slice(0, q)}?${shown.join('&')}`;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
  routeOptions?: { config?: { loggedQuery?: ReadonlySet<string> } };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // Replaces Fastify's request serializer (same fields) to log the URL through safeUrl.
      serializers: {
        req: (req: LoggedRequest) => ({
          method: req.method,
          url:
            typeof req.url === 'string' ? safeUrl(req.url, req.routeOptions?.config?.loggedQuery) : req.url,
          host: req.host,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort,
        }),
      },
      base: { service: 'secrets' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * JSON lines to stdout, gathered into writes of about `bufferBytes` (pino's own sonic-boom
 * buffer) instead of one write(2) per line: a write per line was a visible share of the
 * read path's CPU (docs/benchmarks.md, "Figures behind design choices"). Flushed every 250 ms
 * and on exit (pino registers the flush for asynchronous destinations), so a quiet service
 * still shows its lines promptly; a SIGKILL loses at most the last buffer. The audit trail
 * is in the database and does not depend on this.
 */
export function jsonDestination(
  bufferBytes: number,
  dest: number | string = 1,
): ReturnType<typeof pino.destination> | undefined {
  if (bufferBytes === 0) return undefined;
  return pino.destination({ dest, minLength: bufferBytes, sync: false, periodicFlush: 250 });
}
