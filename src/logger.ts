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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { service: 'secrets' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
