-- Secret identity and metadata. Values live in secret_versions, one row per value ever stored.
CREATE TABLE secrets (
  id uuid PRIMARY KEY,
  -- Monotonic insertion order: the keyset for "newest first" pagination.
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  key text NOT NULL UNIQUE CHECK (key ~ '^[A-Z0-9_]{1,128}$'),
  description text,
  is_active boolean NOT NULL DEFAULT true,
  is_reserved boolean NOT NULL DEFAULT false,
  expires_at timestamptz,
  current_version integer NOT NULL CHECK (current_version >= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  last_used_by text
);

-- Sealed values: envelope encryption (see src/crypto/envelope.ts). Nothing here is plaintext.
CREATE TABLE secret_versions (
  secret_id uuid NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version >= 1),
  format smallint NOT NULL,
  kid text NOT NULL,
  wrapped_dek bytea NOT NULL,
  dek_iv bytea NOT NULL,
  dek_tag bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  ciphertext bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text,
  PRIMARY KEY (secret_id, version)
);
CREATE INDEX secret_versions_kid_idx ON secret_versions (kid);

-- One known plaintext per key id, sealed at first start: a wrong key stops start-up.
CREATE TABLE crypto_canaries (
  kid text PRIMARY KEY,
  format smallint NOT NULL,
  wrapped_dek bytea NOT NULL,
  dek_iv bytea NOT NULL,
  dek_tag bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  ciphertext bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
