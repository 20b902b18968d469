/** One audit row as the writers give it. Never a value: only names, ids and outcomes. */
export interface AuditEntry {
  /** `admin:<sub>`, `access_key:<id>` or `anonymous`. */
  actor: string;
  action: AuditAction;
  key?: string | null | undefined;
  version?: number | null | undefined;
  outcome: string;
  requestId?: string | null | undefined;
  clientIp?: string | null | undefined;
}

/** Where a request came from: what every audited service call needs besides its input. */
export interface AuditContext {
  actor: string;
  requestId: string;
  clientIp: string;
}

export type AuditAction =
  | 'secret.read'
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
  | 'auth.failed'
  | 'auth.denied';
