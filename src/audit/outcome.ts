import { DatabaseUnavailableError, isConcurrencyLoss } from '../db/database.js';
import { AppError } from '../errors.js';

/**
 * What became of one audited attempt, as stored in audit_log.outcome. A closed list: every
 * writer picks from it, and `outcomeOf` is the one mapping from an error to its outcome.
 */
export type AuditOutcome =
  | 'success'
  /** A batch operation (rewrap) that completed with some items failing. */
  | 'partial'
  | 'invalid'
  | 'unauthenticated'
  | 'bad_login'
  /** The guard refused: missing scope, admin-only route, or a key outside the caller's patterns. */
  | 'denied'
  /** A rule refused the change (reserved secret). */
  | 'forbidden'
  | 'not_found'
  | 'inactive'
  | 'expired'
  | 'conflict'
  | 'precondition_failed'
  | 'too_large'
  | 'rate_limited'
  /** The stored value failed its integrity check: nothing was returned. */
  | 'decrypt_failed'
  /** Read together with others, but the request failed, so its value was not returned. */
  | 'withheld'
  | 'unavailable'
  /** A batch import's dry run: nothing was written. */
  | 'dry_run'
  /** A batch import entry that already had the given value and metadata. */
  | 'unchanged'
  /** A batch import entry rolled back because another entry of the batch failed. */
  | 'aborted'
  | 'error';

/** Set on an AppError when its status alone does not say enough (404 inactive vs expired vs missing). */
const OUTCOME = Symbol('auditOutcome');

export function withOutcome<E extends AppError>(err: E, outcome: AuditOutcome): E {
  (err as unknown as Record<symbol, AuditOutcome>)[OUTCOME] = outcome;
  return err;
}

const BY_STATUS: Readonly<Record<number, AuditOutcome>> = {
  400: 'invalid',
  401: 'unauthenticated',
  404: 'not_found',
  409: 'conflict',
  412: 'precondition_failed',
  413: 'too_large',
  415: 'invalid',
  429: 'rate_limited',
  503: 'unavailable',
};

/** The one mapping from an error to the outcome its audit row records. */
export function outcomeOf(err: unknown): AuditOutcome {
  // The two storage failures the caller is answered 503 for (src/http/error-handler.ts).
  if (err instanceof DatabaseUnavailableError || isConcurrencyLoss(err)) return 'unavailable';
  if (!(err instanceof AppError)) return 'error';
  const tagged = (err as unknown as Record<symbol, AuditOutcome | undefined>)[OUTCOME];
  if (tagged) return tagged;
  if (err.code === 'DECRYPTION_FAILED') return 'decrypt_failed';
  // 403 FORBIDDEN is a rule (reserved); 403 AUTH_UNAUTHORIZED is the guard refusing the caller.
  if (err.statusCode === 403) return err.code === 'FORBIDDEN' ? 'forbidden' : 'denied';
  return BY_STATUS[err.statusCode] ?? 'error';
}
