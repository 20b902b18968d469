import type { AuditOutcome } from './outcome.js';

/** One audit row as the writers give it. Never a value: only names, ids and outcomes. */
export interface AuditEntry {
  /** `admin:<sub>`, `access_key:<id>`, `oidc:<trust>:<sub>`, `system:<name>` or `anonymous`. */
  actor: string;
  action: AuditAction;
  key?: string | null | undefined;
  version?: number | null | undefined;
  outcome: AuditOutcome;
  requestId?: string | null | undefined;
  clientIp?: string | null | undefined;
  /** True when requestId is the client's own X-Request-Id. */
  clientRequestId?: boolean | undefined;
  /** The environment of the secret touched (null: none, such as access-key changes). */
  environment?: string | null | undefined;
}

export type AuditAction =
  | 'secret.read'
  | 'secret.versions'
  | 'secret.list'
  | 'secret.create'
  | 'secret.update'
  | 'secret.delete'
  | 'secret.restore'
  | 'secret.purge'
  | 'secret.rotate'
  | 'secret.rollback'
  | 'secret.export'
  | 'secret.render'
  | 'access_key.create'
  | 'access_key.list'
  | 'access_key.revoke'
  | 'oidc_trust.create'
  | 'oidc_trust.update'
  | 'oidc_trust.delete'
  | 'oidc_trust.list'
  | 'environment.create'
  | 'environment.update'
  | 'environment.delete'
  | 'environment.list'
  | 'environment.compare'
  | 'environment.promote'
  | 'webhook.create'
  | 'webhook.update'
  | 'webhook.delete'
  | 'webhook.list'
  | 'webhook.rotate'
  | 'webhook.redeliver'
  | 'events.stream'
  | 'auth.token_exchange'
  | 'auth.failed'
  /** Refusals a rate limit answered without a row each, counted in `version` (src/audit/suppressed.ts). */
  | 'refusals.suppressed';
