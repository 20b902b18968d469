import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/**
 * One access line per request, written when it completes, instead of Fastify's two
 * ("incoming request" + "request completed"): the one line carries the request (method,
 * url, remote address), the status and the time, at half the logging cost on the hot path
 * (bench/ measured logging as the largest per-request CPU cost after the sockets).
 * Redaction (src/logger.ts) applies to it as to every line.
 */
export class OneLineAccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return;
    const line = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}
