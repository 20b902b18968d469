import { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { safeUrl } from '../logger.js';
import { unloggedQuery } from './schemas.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The query parameters logged by value (src/logger.ts's safeUrl); set by collectLoggedQuery. */
    loggedQuery?: ReadonlySet<string>;
  }
}

/** The field schema itself and what it wraps (optional, default, nullable...): a mark on either counts. */
function isUnlogged(field: z.ZodType): boolean {
  let s: z.ZodType | undefined = field;
  while (s) {
    if (unloggedQuery.has(s)) return true;
    s = (s._zod.def as { innerType?: z.ZodType }).innerType;
  }
  return false;
}

/**
 * Derives each route's loggable query parameters from its own querystring schema when it
 * is registered: the keys it declares, less those marked `unlogged()`. Anything else in a
 * URL (a token pasted as ?access_token=..., or any parameter on an unknown route) is logged
 * by name only. Install on the root instance before any route is registered.
 */
export function collectLoggedQuery(app: FastifyInstance) {
  app.addHook('onRoute', (route) => {
    const qs = route.schema?.querystring as { shape?: Record<string, z.ZodType> } | undefined;
    if (!qs?.shape) return;
    const logged = Object.entries(qs.shape)
      .filter(([, field]) => !isUnlogged(field))
      .map(([name]) => name);
    route.config = { ...route.config, loggedQuery: new Set(logged) };
  });
}

/**
 * One access line per request, written when it completes, instead of Fastify's two
 * ("incoming request" + "request completed"): the one line carries the request (method,
 * url, remote address), the status and the time, at half the logging cost on the hot path
 * (logging is among the largest per-request costs; docs/benchmarks.md).
 *
 * A completed request's line is built here from named primitive fields only (the URL
 * through safeUrl, never headers or a body), so it is written by a child logger without
 * the redaction pass, which was about half the line's cost; nothing in it could match a
 * redacted path. An errored request's line carries the error and goes through the request
 * logger, redaction included.
 */
export class OneLineAccessLog extends LogController {
  private readonly access: Logger | undefined;
  private readonly quietProbes: boolean;

  /**
   * `logger`: the app's root logger (without it, every line goes through the request logger).
   * `quietProbes`: successful /health and /ready lines go at debug, not info (a developer's
   * terminal, where a probe every few seconds buries the requests being tried).
   */
  constructor(logger?: Logger, opts: { quietProbes?: boolean } = {}) {
    super();
    this.access = logger?.child({}, { redact: [], serializers: { req: same, res: same } });
    this.quietProbes = opts.quietProbes ?? false;
  }

  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return;
    if (error || !this.access) {
      const line = { req: request, res: reply, responseTime: reply.elapsedTime };
      if (error) reply.log.error({ ...line, err: error }, 'request errored');
      else reply.log.info(line, 'request completed');
      return;
    }
    const level =
      this.quietProbes && reply.statusCode < 400 && PROBES.has(request.routeOptions.url ?? '')
        ? 'debug'
        : 'info';
    if (!this.access.isLevelEnabled(level)) return;
    this.access[level](
      {
        reqId: request.id,
        req: {
          method: request.method,
          url: safeUrl(request.url, request.routeOptions.config.loggedQuery),
          host: request.host,
          remoteAddress: request.ip,
          remotePort: request.socket.remotePort,
        },
        res: { statusCode: reply.statusCode },
        responseTime: reply.elapsedTime,
        ...(rejections.has(request) ? { rejected: rejections.get(request) } : {}),
      },
      'request completed',
    );
  }
}

const same = <T>(x: T): T => x;

/**
 * A request refused with a 4xx by the error handler: its error code goes on the request's
 * one access line (`rejected`) rather than on a line of its own, so a terminal shows one
 * line for it as for any request.
 */
const rejections = new WeakMap<FastifyRequest, string>();
export const noteRejection = (request: FastifyRequest, code: string) => rejections.set(request, code);
const PROBES: ReadonlySet<string> = new Set(['/health', '/ready']);
