-- Issue 23: GET /api/audit?environment= is served by an index, newest first, instead of a
-- scan of the audit log filtered row by row (a rare environment in a large log read every
-- row to find a page).
--
-- Named environments: their rows carry the name (src/audit/repository.ts storedEnvironment),
-- so (environment, id) walks one environment's rows in id order. Partial: default's rows and
-- rows without an environment (access keys, sign-ins), most of a log, stay out of it.
--
-- default: its rows are stored with environment NULL (as every row before environments, so
-- their statements and sealed content are unchanged). The list's filter for default is this
-- predicate, word for word (repository.ts list), which lets the planner use the index.
--
-- Plain CREATE INDEX: the migrator applies each file in one transaction (scripts/migrator.mjs),
-- where CREATE INDEX CONCURRENTLY cannot run, and PostgreSQL does not build an index on a
-- partitioned table (audit_log, migrations/004) concurrently in any case. The build takes a
-- SHARE lock on the audit log (writes wait; reads go on) for as long as it reads the table
-- once per index; partitions attached later (src/audit/maintenance.ts) get both indexes at
-- ATTACH.
CREATE INDEX audit_log_environment_idx ON audit_log (environment, id)
  WHERE environment IS NOT NULL;
CREATE INDEX audit_log_default_environment_idx ON audit_log (id)
  WHERE environment IS NULL AND (action LIKE 'secret.%' OR action = 'environment.compare');
