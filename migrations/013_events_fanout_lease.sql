-- Issue 26: a fresh event is sent before its delivery row is written, and the row is
-- inserted once, with its outcome (src/events/repository.ts `takeFanOut`, `settleFanOut`).
-- The fan-out cursor is then held across the HTTP requests of a batch: by a lease, not by a
-- transaction (a transaction held open would hold back the live stream's release horizon).
-- The instance that takes the lease reads the batch behind the horizon, sends it, and in one
-- statement inserts the outcomes and moves the cursor, only if its lease token is still the
-- row's. If it dies first, another instance takes the lease once it has run out and sends the
-- same events again (same webhook-id: at least once, never lost).
ALTER TABLE event_fanout
  ADD COLUMN lease_token uuid,
  ADD COLUMN lease_until timestamptz;
