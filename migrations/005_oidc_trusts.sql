-- Issue 25: workload identity. A trust policy binds an OIDC issuer, required audiences, a
-- subject and claim bindings (exact, or patterns with *) to a grant like an access key's
-- (scopes + key patterns) and a short lifetime. POST /api/auth/token trades a matching ID
-- token for a workload token (iw_...), kept like an access key: only its SHA-256.
CREATE TABLE oidc_trusts (
  id uuid PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
  issuer text NOT NULL,
  audiences text[] NOT NULL CHECK (cardinality(audiences) >= 1),
  subject text NOT NULL,
  -- {"claim": "exact value or pattern with *", ...}
  claims jsonb NOT NULL DEFAULT '{}'::jsonb,
  scopes text[] NOT NULL,
  -- NULL: every key; otherwise exact names or PREFIX_* patterns.
  key_patterns text[],
  ttl_seconds integer NOT NULL CHECK (ttl_seconds BETWEEN 60 AND 3600),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oidc_trusts_issuer_idx ON oidc_trusts (issuer);

-- The grant is copied at issue time: editing a trust does not widen or narrow tokens already
-- issued (they live at most an hour). Deleting the trust sets trust_id NULL, which revokes
-- its tokens at once (authentication requires the trust to exist).
CREATE TABLE workload_tokens (
  token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
  trust_id uuid REFERENCES oidc_trusts (id) ON DELETE SET NULL,
  trust_name text NOT NULL,
  subject text NOT NULL,
  scopes text[] NOT NULL,
  key_patterns text[],
  issued_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX workload_tokens_expires_idx ON workload_tokens (expires_at);
