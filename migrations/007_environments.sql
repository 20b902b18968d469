-- Issue 23: environments. A secret belongs to exactly one environment and a key is unique
-- within its environment. `default` is the InsForge API (/api/secrets...): every secret that
-- exists before this migration stays there under its own id, with its versions and its
-- audit history untouched; every access key and workload grant that exists covers it alone.
CREATE TABLE environments (
  -- A short lowercase slug (src/environments/names.ts holds the same rule).
  name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  description text CHECK (description IS NULL OR length(description) <= 1000),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO environments (name, description)
  VALUES ('default', 'The default environment: the InsForge API at /api/secrets');

-- A constant default: PostgreSQL records it in the catalogue, no table rewrite. No foreign
-- key: every insert into `default` would otherwise take a KEY SHARE lock on that one hot row
-- (multixacts under concurrent creates). The service locks a named environment's row while
-- it creates a secret there, and deleting an environment locks it exclusively first.
ALTER TABLE secrets ADD COLUMN environment text NOT NULL DEFAULT 'default';

-- Uniqueness becomes (environment, key); the read path's lookup uses this index (one probe).
ALTER TABLE secrets DROP CONSTRAINT secrets_key_key;
ALTER TABLE secrets ADD CONSTRAINT secrets_environment_key_key UNIQUE (environment, key);
-- A list is newest first within one environment (a small environment beside a large one).
CREATE INDEX secrets_environment_seq_idx ON secrets (environment, seq);

-- New audit rows name the environment of the secret they touch (NULL: no environment, such
-- as access-key changes; rows written before this migration keep NULL, and their sealed
-- content is unchanged: the canonical row includes the column only when it is not NULL).
ALTER TABLE audit_log ADD COLUMN environment text;

-- The environments a credential covers: names, or '*' for every environment.
ALTER TABLE access_keys ADD COLUMN environments text[] NOT NULL DEFAULT '{default}';
ALTER TABLE oidc_trusts ADD COLUMN environments text[] NOT NULL DEFAULT '{default}';
ALTER TABLE workload_tokens ADD COLUMN environments text[] NOT NULL DEFAULT '{default}';
