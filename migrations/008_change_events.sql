-- Issue 26: change events. Every committed change of a secret writes one row of
-- change_events in the statement (and so the transaction) that makes the change: an event
-- exists if and only if its change committed. Events carry no values, only names, numbers
-- and ids (docs/events.md lists the types).
CREATE TABLE change_events (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  type text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  key text,
  version integer,
  etag text,
  actor text NOT NULL,
  audit_id bigint,
  -- webhook.* events: the subscription they are about.
  subscription_id uuid,
  -- The writing transaction: the live stream releases events in xid order only below the
  -- oldest running transaction (pg_snapshot_xmin), so a resumed stream never skips one.
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  -- The changed secret's environment (migrations/007): the stream shows a credential only
  -- the environments it covers, and receivers tell staging's STRIPE_KEY from production's.
  environment text NOT NULL DEFAULT 'default'
);
CREATE INDEX change_events_xid_idx ON change_events (xid, seq);
CREATE INDEX change_events_at_idx ON change_events (at);

-- A webhook subscription. Its signing secrets (whsec_...) live in webhook_secrets, sealed
-- like a secret's value.
CREATE TABLE webhook_subscriptions (
  id uuid PRIMARY KEY,
  url text NOT NULL,
  description text,
  event_types text[] NOT NULL,
  -- Empty: every key.
  key_prefixes text[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  -- Failed attempts since the last success, and since when (WEBHOOK_DISABLE_* disable it).
  consecutive_failures integer NOT NULL DEFAULT 0,
  failing_since timestamptz,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  seq bigserial UNIQUE
);

-- generation n is sealed with identity (subscription id, 'webhook', n). The newest
-- generation signs; an older one keeps signing alongside it until retires_at.
CREATE TABLE webhook_secrets (
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  generation integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retires_at timestamptz,
  format smallint NOT NULL,
  kid text NOT NULL,
  wrapped_dek bytea NOT NULL,
  dek_iv bytea NOT NULL,
  dek_tag bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  ciphertext bytea NOT NULL,
  PRIMARY KEY (subscription_id, generation)
);

-- One event for one subscription. Sent in event order per (subscription, key); claimed
-- with FOR UPDATE SKIP LOCKED and held by a lease while the request is in flight, so two
-- instances never send the same delivery at the same time.
CREATE TABLE webhook_deliveries (
  id bigserial PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  event_seq bigint NOT NULL REFERENCES change_events (seq) ON DELETE CASCADE,
  -- The ordering scope: the event's key ('' for events without one), so that the
  -- "earlier pending delivery of this key" check is one index probe.
  key text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, key, event_seq, id)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_next_idx ON webhook_deliveries (subscription_id, event_seq, id)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (subscription_id, id);

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
  delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  response_status integer,
  latency_ms integer NOT NULL,
  error text,
  PRIMARY KEY (delivery_id, attempt)
);

-- secret.expiring is emitted once per secret and expiry: the job inserts here first, and
-- ON CONFLICT DO NOTHING lets only one instance win.
CREATE TABLE expiry_notices (
  secret_id uuid NOT NULL,
  expires_at timestamptz NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (secret_id, expires_at)
);

-- Fan-out in the event's own statement: one delivery per matching enabled subscription.
-- A statement-level trigger (one INSERT ... SELECT per statement, whatever inserted the
-- events), so no writer needs to know about subscriptions.
CREATE FUNCTION change_events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_deliveries (subscription_id, event_seq, key)
  SELECT s.id, e.seq, COALESCE(e.key, '')
  FROM new_events e JOIN webhook_subscriptions s
    ON s.enabled AND e.type = ANY (s.event_types)
   AND (e.subscription_id IS NULL OR e.subscription_id <> s.id)
   AND (cardinality(s.key_prefixes) = 0
        OR (e.key IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(s.key_prefixes) p WHERE starts_with(e.key, p))))
  ORDER BY e.seq;
  RETURN NULL;
END
$$;

CREATE TRIGGER change_events_fan_out
  AFTER INSERT ON change_events
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION change_events_fan_out();
