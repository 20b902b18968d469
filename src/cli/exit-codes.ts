import { SecretsApiError, SecretsUnreachableError } from '../client/index.js';

/**
 * Exit codes of the secrets CLI, one per failure a script may want to tell apart.
 * `run` exits with its command's code instead (128 + n when the command died of signal n).
 */
export const EXIT = {
  ok: 0,
  /** Unexpected failure (a bug, or a local I/O error). */
  failure: 1,
  /** Bad command line or input (unknown option, missing key, empty value). */
  usage: 2,
  /** No HTTP answer: the server is down, the URL is wrong, DNS or TLS failed. */
  unreachable: 3,
  /** 401: no token, or the token is invalid or expired. */
  unauthenticated: 4,
  /** 403: the token is not an admin's, or the secret is reserved. */
  forbidden: 5,
  /** 404: no such secret (or it is inactive or expired). */
  notFound: 6,
  /** 429: rate limited; retry after the delay printed. */
  rateLimited: 7,
  /** Any other error answer (400, 409, 413, 5xx): the message says what. */
  apiError: 8,
  /** run: a secret would set a deny-listed variable (PATH, NODE_OPTIONS...) without --allow-env. */
  deniedEnv: 9,
  /** get: the secret is write-only; its value is never returned (run/export with secrets:inject deliver it). */
  writeOnly: 10,
} as const;

/** The server's refusal to reveal a write-only secret (403 FORBIDDEN, src/secrets/service.ts). */
export const isWriteOnlyRefusal = (err: unknown): boolean =>
  err instanceof SecretsApiError && err.status === 403 && / is write-only/.test(err.message);

export class UsageError extends Error {}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof SecretsUnreachableError) return EXIT.unreachable;
  if (!(err instanceof SecretsApiError)) return EXIT.failure;
  if (isWriteOnlyRefusal(err)) return EXIT.writeOnly;
  switch (err.status) {
    case 401:
      return EXIT.unauthenticated;
    case 403:
      return EXIT.forbidden;
    case 404:
      return EXIT.notFound;
    case 429:
      return EXIT.rateLimited;
    default:
      return EXIT.apiError;
  }
}

/** One line for stderr: what failed and how to fix it. Never contains a value. */
export function describeError(err: unknown): string {
  if (err instanceof SecretsApiError) {
    const retry = err.retryAfter ? ` (retry after ${err.retryAfter} s)` : '';
    const hint = cliHint(err) ?? (err.nextActions?.includes('/api/') ? undefined : err.nextActions);
    return `${err.code} (${err.status}): ${err.message}${retry}${hint ? `\n  ${hint}` : ''}`;
  }
  if (err instanceof SecretsUnreachableError) {
    return `${err.message}\n  check SECRETS_URL (or --url) and that the server is running (secrets serve)`;
  }
  return (err as Error)?.message ?? String(err);
}

/**
 * The fix in terms of CLI commands: the server's nextActions name HTTP routes, which are
 * the wrong advice for someone at a shell.
 */
function cliHint(err: SecretsApiError): string | undefined {
  if (isWriteOnlyRefusal(err)) {
    return / cannot be undone/.test(err.message)
      ? 'write-only is permanent; to know the value, set a new one: secrets set KEY'
      : 'a write-only value reaches programs only through secrets run / secrets export with an access key holding secrets:inject (and secrets:read); to know the value, set a new one: secrets set KEY';
  }
  if (err.status === 403 && /write-only secret\(s\) this credential may not receive/.test(err.message))
    return 'use an access key with the scopes secrets:read and secrets:inject (an admin token never receives write-only values), or a --prefix that excludes them';
  switch (err.status) {
    case 401:
      // Logging in again with the same credential cannot help: say what can.
      if (/access key was revoked|access key expired/.test(err.message))
        return 'an admin creates a new access key (the old one cannot be used again); store it with secrets login --token-stdin';
      if (/workload token|trust policy/.test(err.message))
        return 'run again with --oidc: each run exchanges a fresh ID token';
      return 'log in with secrets login (or set SECRETS_TOKEN / SECRETS_TOKEN_FILE); an operator mints a token with secrets token --sub NAME';
    case 404:
      if (/inactive/.test(err.message)) return 'restore it by setting a new value: secrets set KEY';
      if (/expired/.test(err.message)) return 'give it a new value with secrets set KEY';
      if (/^Secret not found/.test(err.message))
        return 'check the name with secrets list, or create it with secrets set KEY (or secrets ensure KEY --generate)';
      return "check SECRETS_URL: it is the server's base URL (e.g. http://127.0.0.1:7130), without /api";
    case 409:
      return 'secrets set KEY stores a new value for an existing key';
    case 412:
      return 'the secret changed meanwhile: read it again and retry';
    default:
      return undefined;
  }
}
