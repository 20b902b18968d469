import type { ReadMarks } from '../audit/writer.js';

/**
 * What a value read leaves on its secret, written by the audit writer's batch statement
 * through its ReadMarks hook (src/audit/writer.ts): the lastUsedAt/lastUsedBy stamp, and
 * the primary's check of a read a replica answered. The SQL about the secrets table lives
 * here, with the secrets; the writer only places it in its statement.
 */

/**
 * How stale the stored lastUsed stamp in `secrets` may get before a read rewrites it. The
 * second-exact lastUsedAt/lastUsedBy is the newest success read in the audit trail at or
 * after the stamp (the list query, src/secrets/repository.ts), so the stamp only bounds that
 * lookup to the last minute's partitions: a secret read all the time costs one UPDATE a
 * minute instead of one a second (the measurement: docs/benchmarks.md, "Figures behind
 * design choices").
 */
export const LAST_USED_STAMP_SECONDS = 60;

// Only stamps older than LAST_USED_STAMP_SECONDS (or never written) are rewritten, so a hot
// key does not rewrite its row on every batch; rows are locked in id order so that two
// instances' batches never deadlock on each other. Stamps the secrets named by a `used` CTE.
const STAMP_LAST_USED = `locked AS (
  SELECT s.id, used.by FROM secrets s JOIN used ON used.id = s.id
  WHERE s.last_used_at IS NULL OR s.last_used_at < now() - interval '${LAST_USED_STAMP_SECONDS} seconds'
  ORDER BY s.id FOR UPDATE OF s
), stamped AS (
  UPDATE secrets s SET last_used_at = now(), last_used_by = locked.by FROM locked WHERE s.id = locked.id
)`;

/**
 * A replica's answer the primary contradicts: the secret's revision moved, or a value served
 * as readable is, on the primary and by the primary's clock, inactive or expired. Reads
 * secrets by (environment, key) (its unique index); `checks` has columns w, key, rev,
 * readable and env.
 */
const staleReads = (checks: string) => `  SELECT e.w FROM ${checks}
  LEFT JOIN secrets s ON s.environment = e.env AND s.key = e.key
  WHERE s.revision IS DISTINCT FROM e.rev
     OR (e.readable AND NOT (s.is_active AND (s.expires_at IS NULL OR s.expires_at > now())))`;

export const readMarks: ReadMarks = { stampLastUsed: STAMP_LAST_USED, staleReads };
