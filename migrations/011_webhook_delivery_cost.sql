-- Issue 26: what delivering costs per event (the writer's side is migrations/010).
--
-- 1. A delivery's latest outcome lives on its row: the record UPDATE that ends the attempt
--    sets them anyway, and the delivery log reads them there. webhook_attempts then keeps
--    the history only of deliveries that failed at least once (src/events/repository.ts
--    `record`): a first-try success, almost every event, is one row less.
ALTER TABLE webhook_deliveries
  ADD COLUMN response_status integer,
  ADD COLUMN latency_ms integer,
  ADD COLUMN error text;

UPDATE webhook_deliveries d
SET response_status = a.response_status, latency_ms = a.latency_ms, error = a.error
FROM (
  SELECT DISTINCT ON (delivery_id) delivery_id, response_status, latency_ms, error
  FROM webhook_attempts ORDER BY delivery_id, attempt DESC
) a
WHERE a.delivery_id = d.id;

-- 2. Room on each page for the claim's UPDATE (lease, attempt number: no indexed column) to
--    stay on the page as a HOT update, with no new index entries.
ALTER TABLE webhook_deliveries SET (fillfactor = 70);
