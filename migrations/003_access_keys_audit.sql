-- Scoped access keys. The token itself is never stored: only its SHA-256 (the token is 256
-- random bits, so a fast hash is enough) and a short non-secret prefix for display.
CREATE TABLE access_keys (
  id uuid PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  token_prefix text NOT NULL,
  token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  scopes text[] NOT NULL,
  -- NULL: every key; otherwise exact names or PREFIX_* patterns.
  key_patterns text[],
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz
);

-- Append-only audit trail. Rows are inserted unsealed (seal_seq and hash NULL) so that the
-- hot path never waits on the chain; the sealer (src/audit/sealer.ts) assigns seal_seq in
-- id order and hash = sha256(previous hash || canonical row content), under an advisory lock.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor text NOT NULL,
  action text NOT NULL,
  key text,
  version integer,
  outcome text NOT NULL,
  request_id text,
  client_ip text,
  seal_seq bigint UNIQUE,
  hash bytea
);
CREATE INDEX audit_log_unsealed_idx ON audit_log (id) WHERE seal_seq IS NULL;
CREATE INDEX audit_log_key_idx ON audit_log (key, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);

-- The end of the sealed chain, so that cutting rows off the end is detected too.
CREATE TABLE audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seal_seq bigint NOT NULL,
  hash bytea NOT NULL
);
INSERT INTO audit_chain_head (seal_seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
