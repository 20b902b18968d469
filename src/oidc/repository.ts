import type { Queryable } from '../db/database.js';

/** SQL only. Every method takes the Queryable to run on. */

/** What binds a workload to a trust and what it is granted: named alike in SQL and in code. */
interface TrustBinding {
  name: string;
  issuer: string;
  audiences: string[];
  subject: string;
  claims: Record<string, string>;
  scopes: string[];
  /** Environment names, or ['*']. */
  environments: string[];
}

export interface TrustRow extends TrustBinding {
  id: string;
  key_patterns: string[] | null;
  ttl_seconds: number;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

export interface WorkloadTokenRow {
  trust_id: string | null;
  trust_name: string;
  subject: string;
  scopes: string[];
  key_patterns: string[] | null;
  environments: string[];
  expires_at: Date;
  expired: boolean;
}

const COLUMNS = `id, name, issuer, audiences, subject, claims, scopes, key_patterns, environments, ttl_seconds,
  created_by, created_at, updated_at`;

/** What a caller gives for a trust. */
export interface TrustFields extends TrustBinding {
  keyPatterns: string[] | null;
  ttlSeconds: number;
}

const fieldParams = (t: TrustFields) => [
  t.name,
  t.issuer,
  t.audiences,
  t.subject,
  JSON.stringify(t.claims),
  t.scopes,
  t.keyPatterns,
  t.ttlSeconds,
  t.environments,
];

/** The SQL of trust policies: each method runs on the Queryable it is given. */
export class OidcRepository {
  async insert(q: Queryable, id: string, t: TrustFields, createdBy: string): Promise<TrustRow | undefined> {
    const rows = await q.query<TrustRow>(
      `INSERT INTO oidc_trusts (id, name, issuer, audiences, subject, claims, scopes, key_patterns, ttl_seconds, environments, created_by)
       VALUES ($10, $1, $2, $3::text[], $4, $5::jsonb, $6::text[], $7::text[], $8, $9::text[], $11)
       ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      [...fieldParams(t), id, createdBy],
    );
    return rows[0];
  }

  async updateRow(q: Queryable, name: string, t: TrustFields): Promise<TrustRow | undefined> {
    const rows = await q.query<TrustRow>(
      `UPDATE oidc_trusts SET name = $1, issuer = $2, audiences = $3::text[], subject = $4, claims = $5::jsonb,
         scopes = $6::text[], key_patterns = $7::text[], ttl_seconds = $8, environments = $9::text[], updated_at = now()
       WHERE name = $10 RETURNING ${COLUMNS}`,
      [...fieldParams(t), name],
    );
    return rows[0];
  }

  async deleteRow(q: Queryable, name: string): Promise<TrustRow | undefined> {
    const rows = await q.query<TrustRow>(`DELETE FROM oidc_trusts WHERE name = $1 RETURNING ${COLUMNS}`, [
      name,
    ]);
    return rows[0];
  }

  async findByName(q: Queryable, name: string): Promise<TrustRow | undefined> {
    const rows = await q.query<TrustRow>(`SELECT ${COLUMNS} FROM oidc_trusts WHERE name = $1`, [name]);
    return rows[0];
  }

  /** Every trust, by name (an installation has a handful: no paging). */
  async listAll(q: Queryable): Promise<TrustRow[]> {
    return q.query<TrustRow>(`SELECT ${COLUMNS} FROM oidc_trusts ORDER BY name`);
  }

  async byIssuer(q: Queryable, issuer: string): Promise<TrustRow[]> {
    return q.query<TrustRow>(`SELECT ${COLUMNS} FROM oidc_trusts WHERE issuer = $1 ORDER BY name`, [issuer]);
  }

  /** Stores an issued token's digest and grant; drops tokens that expired a day ago. */
  async issue(
    q: Queryable,
    t: {
      tokenHash: Buffer;
      trustId: string;
      trustName: string;
      subject: string;
      scopes: string[];
      keyPatterns: string[] | null;
      environments: string[];
      ttlSeconds: number;
    },
  ): Promise<Date> {
    await q.query(`DELETE FROM workload_tokens WHERE expires_at < now() - interval '1 day'`);
    const rows = await q.query<{ expires_at: Date }>(
      `INSERT INTO workload_tokens (token_hash, trust_id, trust_name, subject, scopes, key_patterns, expires_at, environments)
       VALUES ($1, $2, $3, $4, $5::text[], $6::text[], now() + make_interval(secs => $7), $8::text[])
       RETURNING expires_at`,
      [t.tokenHash, t.trustId, t.trustName, t.subject, t.scopes, t.keyPatterns, t.ttlSeconds, t.environments],
    );
    return (rows[0] as { expires_at: Date }).expires_at;
  }

  async findByTokenHash(q: Queryable, tokenHash: Buffer): Promise<WorkloadTokenRow | undefined> {
    const rows = await q.query<WorkloadTokenRow>(
      `SELECT trust_id, trust_name, subject, scopes, key_patterns, environments, expires_at, expires_at <= now() AS expired
       FROM workload_tokens WHERE token_hash = $1`,
      [tokenHash],
    );
    return rows[0];
  }
}
