import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { DatabaseUnavailableError, isConcurrencyLoss } from '../db/database.js';
import { AppError, errors } from '../errors.js';
import { noteRejection } from './access-log.js';

/**
 * The one place errors become responses. Known failures keep their status and clear
 * message; anything unexpected is a 500 without internals. Messages from the body parser
 * are replaced with fixed text, because some (JSON syntax errors) quote the body.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof DatabaseUnavailableError) return errors.unavailable();
  const e = err as FastifyError;
  // Transient concurrency failures of the driver (deadlock, serialization): the transaction
  // rolled back as a whole, so "try again" is the true answer, not a 500.
  if (isConcurrencyLoss(err)) return errors.concurrentConflict();
  if (hasZodFastifySchemaValidationErrors(e)) {
    // A missing required field says the most; put it first (seed 000's "Both key and value are required").
    const messages = [...new Set(e.validation.map((v) => String(v.message)))].sort(
      (a, b) => Number(b.includes('required')) - Number(a.includes('required')),
    );
    return errors.invalidInput(
      messages.join('; '),
      'Fix the request as the message says; see GET /docs for the schema',
    );
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.unsupportedMediaType(String(e.message.match(/'([^']*)'/)?.[1] ?? 'unknown'));
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.payloadTooLarge('Request body is too large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return errors.invalidInput('Request body is empty: send a JSON object', 'Send a JSON object body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errors.invalidInput('Request body is not valid JSON', 'Send a JSON object body');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errors.invalidInput('Content-Length does not match the body');
    case 'FST_ERR_CTP_INVALID_TYPE':
      return errors.invalidInput('Content-Type header is malformed');
    default:
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 429) return errors.rateLimited(60);
    return new AppError(e.statusCode, e.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_INPUT', 'Bad request');
  }
  return errors.internal();
}

export function sendError(reply: FastifyReply, appErr: AppError) {
  if (appErr.headers) reply.headers(appErr.headers);
  return reply
    .code(appErr.statusCode)
    .type('application/json; charset=utf-8')
    .send({
      error: appErr.code,
      message: appErr.message,
      statusCode: appErr.statusCode,
      ...(appErr.nextActions ? { nextActions: appErr.nextActions } : {}),
    });
}

/** Unread request body discarded before an error answer; past it the connection is closed instead. */
export const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;

/**
 * Sends the error once the request body the client is still sending has been read and
 * discarded (up to DRAIN_LIMIT_BYTES). An answer sent while the client is still writing (a
 * 413 decided from Content-Length, a 401 decided from the headers) is followed by Node
 * closing the socket, and a client that is still sending, such as Node's fetch, then sees a
 * reset (EPIPE, "fetch failed") instead of the answer. Past the bound the answer goes with
 * Connection: close; REQUEST_TIMEOUT_MS bounds how long draining can take.
 */
function afterBody(
  req: FastifyRequest,
  reply: FastifyReply,
  send: () => FastifyReply,
  limit: number = DRAIN_LIMIT_BYTES,
): FastifyReply | Promise<FastifyReply> {
  const raw = req.raw;
  if (raw.complete || raw.readableEnded || raw.destroyed) return send();
  // A body announced longer than the bound is not read at all.
  if (Number(raw.headers['content-length'] ?? 0) > limit) {
    reply.header('connection', 'close');
    return send();
  }
  return new Promise((resolve) => {
    let seen = 0;
    const finish = () => {
      raw.off('data', onData);
      raw.off('end', finish);
      raw.off('error', finish);
      raw.off('close', finish);
      resolve(send());
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limit) {
        reply.header('connection', 'close');
        finish();
      }
    };
    raw.on('data', onData);
    raw.once('end', finish);
    raw.once('error', finish);
    raw.once('close', finish);
    raw.resume();
  });
}

export function installErrorHandling(app: FastifyInstance) {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const appErr = toAppError(err);
    if (appErr.statusCode >= 500) {
      // Log the error's class and code, never its message: driver errors can quote parameters.
      // Driver errors (they carry a SQLSTATE severity) can quote statement parameters, so
      // only their class and code are logged; our own errors never hold values, so their
      // stack is kept for debugging.
      const e = err as {
        name?: string;
        code?: unknown;
        stack?: string;
        severity?: unknown;
        cause?: { code?: unknown };
      };
      const fromDriver = e.severity !== undefined || err instanceof DatabaseUnavailableError;
      req.log.error(
        {
          errName: e.name,
          errCode: e.code ?? e.cause?.code,
          status: appErr.statusCode,
          ...(fromDriver ? {} : { stack: e.stack }),
        },
        'request failed',
      );
    } else {
      noteRejection(req, appErr.code);
    }
    return afterBody(req, reply, () => sendError(reply, appErr), appErr.drainBytes);
  });
  app.setNotFoundHandler((req, reply) => {
    const notFound = errors.routeNotFound(req.method, req.url.split('?')[0] ?? '');
    noteRejection(req, notFound.code);
    return sendError(reply, notFound);
  });
}
