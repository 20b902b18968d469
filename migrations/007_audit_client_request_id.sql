-- True when the row's request_id is the client's own X-Request-Id (it can then be chosen
-- by the client, so it is not proof of uniqueness); false when the service generated it.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS client_request_id boolean NOT NULL DEFAULT false;
