-- Issue 26: the fan-out leaves the writer's transaction. A writer inserts only its
-- change_events row (as with no subscription at all); the dispatcher fans events out in
-- batches, behind the live stream's release horizon (src/events/repository.ts `fanOut`),
-- one INSERT ... SELECT per batch and the cursor moved in the same short transaction.
DROP TRIGGER change_events_fan_out ON change_events;
DROP FUNCTION change_events_fan_out();

-- What a subscription matches, as a range of event sequence numbers: events written after
-- it was created or last enabled (fan_from: the sequence's last value then), up to when it
-- was disabled (fan_until), the same events the trigger queued for it at write time.
ALTER TABLE webhook_subscriptions
  ADD COLUMN fan_from bigint NOT NULL DEFAULT 0,
  ADD COLUMN fan_until bigint;

-- Kept by a row trigger on the subscriptions table (written rarely: created, edited,
-- enabled, disabled, its failure run), whoever enables or disables it.
CREATE FUNCTION webhook_subscriptions_window() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  seq_now bigint := COALESCE(pg_sequence_last_value('change_events_seq_seq'::regclass), 0);
BEGIN
  IF TG_OP = 'INSERT' OR NEW.enabled THEN
    NEW.fan_from := seq_now;
    NEW.fan_until := CASE WHEN NEW.enabled THEN NULL ELSE seq_now END;
  ELSE
    NEW.fan_until := seq_now;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER webhook_subscriptions_window_insert
  BEFORE INSERT ON webhook_subscriptions
  FOR EACH ROW EXECUTE FUNCTION webhook_subscriptions_window();
CREATE TRIGGER webhook_subscriptions_window_update
  BEFORE UPDATE OF enabled ON webhook_subscriptions
  FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)
  EXECUTE FUNCTION webhook_subscriptions_window();

-- Events up to now were fanned out by the trigger.
UPDATE webhook_subscriptions
SET fan_from = COALESCE(pg_sequence_last_value('change_events_seq_seq'::regclass), 0),
    fan_until = CASE WHEN enabled THEN NULL
                     ELSE COALESCE(pg_sequence_last_value('change_events_seq_seq'::regclass), 0) END;

-- The fan-out cursor: the stream position (xid, seq) of the last event fanned out. One row,
-- locked FOR UPDATE SKIP LOCKED by the instance fanning out, so instances never fan out the
-- same events twice. Every transaction that writes an event from now on has an xid at or
-- above this snapshot's xmin (the older ones ran with the trigger: dropping it waited for
-- them), and fan_from above keeps any event of that range the trigger already queued out.
CREATE TABLE event_fanout (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  after_xid xid8 NOT NULL,
  after_seq bigint NOT NULL
);
INSERT INTO event_fanout (after_xid, after_seq) VALUES (pg_snapshot_xmin(pg_current_snapshot()), 0);
