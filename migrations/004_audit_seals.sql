-- Issue 10: audit rows are written once and never updated. The chain is kept in seal
-- records over ranges of transaction ids (src/audit/sealer.ts), and audit_log is
-- partitioned by time so that old, sealed partitions can be archived and dropped whole
-- (src/audit/maintenance.ts).

-- The old table goes away after its rows are carried over; its sequence stays, so ids
-- keep growing from where they were.
DROP INDEX audit_log_unsealed_idx;
DROP INDEX audit_log_key_idx;
DROP INDEX audit_log_actor_idx;
DROP INDEX audit_log_action_idx;
ALTER TABLE audit_log RENAME TO audit_log_v3;
ALTER INDEX audit_log_pkey RENAME TO audit_log_v3_pkey;
ALTER SEQUENCE audit_log_id_seq OWNED BY NONE;

-- xid: the writing transaction (top level); a seal covers exactly the rows whose xid lies
-- in its range, and a range is sealed only once every transaction below its end has
-- finished, so no late commit can land in it. client_request_id: the request id came from
-- the client's X-Request-Id header rather than being generated here.
CREATE TABLE audit_log (
  id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor text NOT NULL,
  action text NOT NULL,
  key text,
  version integer,
  outcome text NOT NULL,
  request_id text,
  client_ip text,
  client_request_id boolean NOT NULL DEFAULT false,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);

-- Rows outside every partition land here; the maintenance job creates partitions ahead of
-- time and moves rows out of it (carried-over rows included) when it creates their range.
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- Carried over in id order; they all get this migration's transaction id and are sealed
-- by the first seal of the new chain (the old per-row hashes are not kept).
INSERT INTO audit_log (id, at, actor, action, key, version, outcome, request_id, client_ip)
  SELECT id, at, actor, action, key, version, outcome, request_id, client_ip FROM audit_log_v3 ORDER BY id;
DROP TABLE audit_log_v3;
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE INDEX audit_log_xid_idx ON audit_log (xid);
CREATE INDEX audit_log_key_idx ON audit_log (key, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);

-- Seal seq covers the rows with xid in [xid_from, xid_to) and at in [at_lo, at_hi) (NULL =
-- unbounded). The seals of one xid range tile time from -infinity to +infinity: the sealer
-- splits a range at UTC day boundaries so that a day's partition can be archived with
-- exactly the seals that cover it. row_digests: the first 8 bytes of each row's digest in
-- id order, to name the first row that differs; hash = sha256(prev_hash || header ||
-- full row digests) is what makes the chain tamper-evident.
CREATE TABLE audit_seals (
  seq bigint PRIMARY KEY,
  xid_from xid8 NOT NULL,
  xid_to xid8 NOT NULL,
  at_lo timestamptz,
  at_hi timestamptz,
  first_id bigint,
  last_id bigint,
  min_at timestamptz,
  max_at timestamptz,
  row_count integer NOT NULL,
  row_digests bytea NOT NULL,
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL,
  sealed_at timestamptz NOT NULL DEFAULT now()
);

-- The end of the chain (so that cutting seals off the end is detected) and where the next
-- seal starts. The old per-row chain restarts from genesis.
ALTER TABLE audit_chain_head ADD COLUMN xid_to xid8 NOT NULL DEFAULT '0';
UPDATE audit_chain_head SET seal_seq = 0, hash = decode(repeat('00', 32), 'hex'), xid_to = '0';

-- Where verification starts once older seals were archived: the last archived seal.
CREATE TABLE audit_anchor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seal_seq bigint NOT NULL,
  hash bytea NOT NULL,
  xid_from xid8 NOT NULL,
  xid_to xid8 NOT NULL,
  at_hi timestamptz,
  archive text NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now()
);
