-- Issue 26: what change events cost writers.
--
-- 1. No foreign keys from webhook_deliveries. Each delivery row the fan-out trigger inserted
--    ran two referential checks in the writer's transaction, and the one on
--    webhook_subscriptions took FOR KEY SHARE on the same subscription row from every
--    concurrent writer (a MultiXact per contended row). The two ON DELETE CASCADEs become
--    statement-level triggers below, one statement per DELETE instead of one per row.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_subscription_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_seq_fkey;
-- Nothing reads by next_at alone (a claim starts from the subscription: next_idx): one
-- index less for every delivery a writer queues. (No index on event_seq either: only the
-- retention prune deletes events, once a minute, and change_events_gone below then finds
-- their deliveries in one pass.)
DROP INDEX webhook_deliveries_due_idx;

CREATE FUNCTION webhook_subscriptions_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM webhook_deliveries d USING gone g WHERE d.subscription_id = g.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER webhook_subscriptions_gone
  AFTER DELETE ON webhook_subscriptions
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_subscriptions_gone();

CREATE FUNCTION change_events_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM gone) THEN
    RETURN NULL;
  END IF;
  DELETE FROM webhook_deliveries d USING gone g WHERE d.event_seq = g.seq;
  RETURN NULL;
END
$$;
CREATE TRIGGER change_events_gone
  AFTER DELETE ON change_events
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION change_events_gone();

-- 2. One index less on every event a writer inserts: only the retention prune asked by
--    time, and events are inserted in time order, so it now finds its bound on the primary
--    key (src/events/repository.ts `prune`).
DROP INDEX change_events_at_idx;

-- 3. The fan-out does nothing while no subscription is enabled (the common case): one probe
--    of a table of a few rows instead of planning and running the join.
CREATE OR REPLACE FUNCTION change_events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE enabled) THEN
    RETURN NULL;
  END IF;
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
