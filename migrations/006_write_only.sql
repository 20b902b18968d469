-- Issue 24: write-only secrets. A write-only secret's value is never revealed to a person
-- (GET /api/secrets/:key answers 403 to every caller, admins included); workloads receive it
-- through export, render and `secrets run` only with the secrets:inject scope. Once set,
-- the flag is permanent: the service refuses to clear it, and this trigger refuses it too,
-- so that no code path (or a hand-written UPDATE) can make the old values readable again.
ALTER TABLE secrets ADD COLUMN write_only boolean NOT NULL DEFAULT false;

CREATE FUNCTION secrets_write_only_is_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'secret % is write-only: the flag cannot be cleared', OLD.key
    USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER secrets_write_only_is_permanent
  BEFORE UPDATE OF write_only ON secrets
  FOR EACH ROW WHEN (OLD.write_only AND NOT NEW.write_only)
  EXECUTE FUNCTION secrets_write_only_is_permanent();
