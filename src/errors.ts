/**
 * Typed errors rendered by one handler (src/http/error-handler.ts) as the InsForge error
 * body: { error, message, statusCode, nextActions? }. `error` is for programs, `message`
 * for people, `nextActions` says how to fix it. Messages never contain secret values.
 */
export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly nextActions?: string,
    readonly headers?: Record<string, string>,
    /**
     * The most unread request body read and discarded before this answer (default: the error
     * handler's DRAIN_LIMIT_BYTES); a longer body gets the answer with the connection closed.
     */
    readonly drainBytes?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/**
 * The Retry-After header (whole seconds) of every 429 and 503: the client (src/client) and
 * the CLI read it to back off.
 */
const retryAfter = (seconds: number) => ({ 'retry-after': String(seconds) });

/**
 * Every 503 is built here, so every 503 says when to come back: Retry-After, 2 s unless the
 * cause calls for another delay.
 */
const serviceUnavailable = (code: string, message: string, nextActions: string, retryAfterSeconds = 2) =>
  new AppError(503, code, message, nextActions, retryAfter(retryAfterSeconds));

export const errors = {
  invalidInput: (message: string, nextActions?: string) =>
    new AppError(400, 'INVALID_INPUT', message, nextActions),
  noCredentials: () =>
    new AppError(
      401,
      'AUTH_INVALID_CREDENTIALS',
      'Authentication required: send an Authorization: Bearer <token> header',
      'Obtain an admin token (POST /api/auth/admin/sessions or npm run token) and send it as a Bearer token',
    ),
  badToken: (why: string) =>
    new AppError(401, 'AUTH_UNAUTHORIZED', `Invalid token: ${why}`, 'Obtain a new admin token and retry'),
  badLogin: () =>
    new AppError(
      401,
      'AUTH_INVALID_CREDENTIALS',
      'Invalid username or password',
      'Check ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD',
    ),
  /**
   * 403 for "this caller may not do this" (not admin, an access key's scope, patterns or an
   * admin-only operation): AUTH_UNAUTHORIZED, the code InsForge gives a non-admin.
   */
  denied: (message: string, nextActions?: string) =>
    new AppError(403, 'AUTH_UNAUTHORIZED', message, nextActions),
  notAdmin: () =>
    errors.denied(
      'Admin access required: the token does not carry the admin role',
      'Use a token whose role claim is the admin role',
    ),
  /** 403 for "a rule protects this secret, whoever asks" (reserved): FORBIDDEN, as InsForge's reserved delete. */
  forbidden: (message: string, nextActions?: string) => new AppError(403, 'FORBIDDEN', message, nextActions),
  notFound: (message: string, nextActions?: string) => new AppError(404, 'NOT_FOUND', message, nextActions),
  environmentNotFound: (name: string) =>
    errors.notFound(
      `Environment not found: ${name}`,
      'List the environments with GET /api/environments, or create it with POST /api/environments',
    ),
  routeNotFound: (method: string, url: string) =>
    new AppError(404, 'NOT_FOUND', `Route ${method} ${url} not found`, 'See GET /docs for the API reference'),
  /**
   * 409 keeps the code INVALID_INPUT: InsForge documents exactly that body for an existing
   * key (seed 000, the reference OpenAPI), and clients written against it may match on it.
   * Programs tell a conflict apart by statusCode 409, which no other error uses.
   */
  conflict: (message: string, nextActions?: string) =>
    new AppError(409, 'INVALID_INPUT', message, nextActions),
  preconditionFailed: (currentEtag: string) =>
    new AppError(
      412,
      'PRECONDITION_FAILED',
      'Precondition failed: the secret changed since the ETag given in If-Match',
      'Read the secret again (its current ETag is in the ETag header), re-apply your change and retry with that ETag',
      { etag: currentEtag },
    ),
  /** A batch entry's ifMatch: the secret changed since, or does not exist. */
  entryExists: (key: string) =>
    new AppError(
      412,
      'PRECONDITION_FAILED',
      `Precondition failed: ${key} exists (ifNoneMatch "*" asked for none)`,
      'Read it (or compare again) and retry with its current ETag in ifMatch',
    ),
  entryPreconditionFailed: (key: string, exists: boolean) =>
    new AppError(
      412,
      'PRECONDITION_FAILED',
      `Precondition failed: ${key} ${exists ? 'changed since the ETag given in ifMatch' : 'does not exist'}`,
      'Read the secret again, then retry the import with its current ETag (or without ifMatch)',
    ),
  payloadTooLarge: (message: string) =>
    new AppError(413, 'PAYLOAD_TOO_LARGE', message, 'Store a smaller value or raise MAX_VALUE_BYTES'),
  unsupportedMediaType: (type: string) =>
    new AppError(
      415,
      'INVALID_INPUT',
      `Unsupported Content-Type ${JSON.stringify(type)}: send the body as application/json`,
      'Set the header Content-Type: application/json',
    ),
  rateLimited: (retryAfterSeconds: number, why = 'Too many requests') =>
    new AppError(
      429,
      'RATE_LIMITED',
      `${why}: retry in ${retryAfterSeconds} s`,
      'Wait for Retry-After seconds',
      retryAfter(retryAfterSeconds),
    ),
  /**
   * An identity refused too often this window (REFUSAL_RATE_LIMIT): answered before its body
   * is read, and a body over 64 KB is not read at all (the connection is closed instead).
   */
  tooManyRefusals: (retryAfterSeconds: number, perMinute: number) =>
    new AppError(
      429,
      'RATE_LIMITED',
      `Too many refused requests: at most ${perMinute} per identity per minute (REFUSAL_RATE_LIMIT): retry in ${retryAfterSeconds} s`,
      'Fix the requests that were refused (see their messages), then wait for Retry-After seconds',
      retryAfter(retryAfterSeconds),
      64 * 1024,
    ),
  /** The rendered template is over MAX_RENDER_BYTES (the size is named when it is not far over). */
  renderTooLarge: (maxBytes: number, size: number) =>
    new AppError(
      413,
      'PAYLOAD_TOO_LARGE',
      `The rendered template would exceed ${maxBytes} bytes (MAX_RENDER_BYTES)${size > maxBytes * 2 ? '' : `: ${size} bytes`}`,
      'Reference fewer or smaller secrets per template, or render it in parts',
    ),
  /** 401 for a presented token that is not (or no longer) valid, with its own next step. */
  unauthorized: (message: string, nextActions: string) =>
    new AppError(401, 'AUTH_UNAUTHORIZED', message, nextActions),
  integrity: (key: string) =>
    new AppError(
      500,
      'DECRYPTION_FAILED',
      `Secret ${key} could not be decrypted: its stored data failed the integrity check`,
      'The stored row was altered or the encryption key differs; restore it from a backup or set a new value with PUT',
    ),
  internal: () =>
    new AppError(
      500,
      'INTERNAL_ERROR',
      'Internal server error',
      'Retry later; if it persists, check the server logs',
    ),
  unavailable: () =>
    serviceUnavailable(
      'SERVICE_UNAVAILABLE',
      'Service unavailable: the database cannot be reached',
      'Retry after the Retry-After delay',
    ),
  /**
   * PostgreSQL chose this transaction as the loser of a deadlock or a serialization
   * conflict (SQLSTATE 40P01, 40001): it rolled back and changed nothing, and the same
   * request sent again normally succeeds.
   */
  concurrentConflict: () =>
    serviceUnavailable(
      'SERVICE_UNAVAILABLE',
      'Service unavailable: the change collided with a concurrent change and was rolled back; nothing was changed',
      'Send the same request again after the Retry-After delay',
      1,
    ),
  /** The audit rows could not be committed: the request fails closed and returns nothing. */
  auditUnavailable: () =>
    serviceUnavailable(
      'SERVICE_UNAVAILABLE',
      'Service unavailable: the audit trail could not be written, so nothing was returned',
      'Retry after the Retry-After delay',
    ),
  /** A part the service needs is missing or unreachable (503 with its own message). */
  dependencyUnavailable: (message: string, nextActions: string) =>
    serviceUnavailable('SERVICE_UNAVAILABLE', message, nextActions),
  /**
   * The OIDC issuer's keys could not be fetched to verify a token. Nothing caches the
   * failure, so each retry reaches the issuer again (and may wait out the fetch timeout of
   * src/oidc/issuer-keys.ts): a longer delay than our own storage's spares an issuer that is down.
   */
  issuerUnavailable: (issuer: string, why: string) =>
    serviceUnavailable(
      'ISSUER_UNAVAILABLE',
      `The identity provider ${issuer} could not be reached to verify the token: ${why}`,
      'Retry shortly; if it persists, check that the trust policy issuer is right and reachable from the service',
      5,
    ),
};
