-- A counter bumped by every change to a secret (value or metadata, not reads): the ETag
-- names (id, revision), so compare-and-set never depends on clock resolution.
ALTER TABLE secrets ADD COLUMN revision bigint NOT NULL DEFAULT 1;
