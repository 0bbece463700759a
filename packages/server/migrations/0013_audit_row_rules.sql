-- The audit event's row rules, checked by one trigger instead of seven CHECK constraints.
--
-- Why: PostgreSQL re-reads every CHECK constraint of a table from its stored node text and plans
-- it again at the start of every statement that writes the table (ExecRelCheck: stringToNode and
-- expression_planner, per statement, not per session). A governed write inserts one audit row
-- per statement, so the seven checks of audit_events cost more than the row itself: ~200 000 of
-- the ~1 000 000 instructions of a governed form-intake create (callgrind on the backend, see
-- docs/benchmarks.md). A plpgsql trigger is compiled once per session; one row through it costs
-- ~38 000. Same rules, same SQLSTATE (23514 check_violation), each rule named in the error,
-- for every role (a trigger fires for the owner and superusers too, as the checks did), on
-- INSERT and on UPDATE (an erasure's change must satisfy them as well).
DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT conname FROM pg_constraint
            WHERE conrelid = 'trellis.audit_events'::regclass AND contype = 'c' LOOP
    EXECUTE format('ALTER TABLE trellis.audit_events DROP CONSTRAINT %I', c.conname);
  END LOOP;
END $$;

CREATE FUNCTION trellis.audit_events_valid() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  -- The first rule the row breaks, each rule written once. One expression (each expression of a
  -- plpgsql function is set up once per transaction); a NULL test passes, as it passes a CHECK.
  rule text := CASE
    WHEN NOT NEW.actor_role IN ('admin', 'app_user', 'anonymous') THEN 'audit_events_actor_role'
    WHEN NOT NEW.outcome IN ('allowed', 'denied', 'error') THEN 'audit_events_outcome'
    WHEN (NEW.outcome = 'allowed') <> (NEW.error_code IS NULL) THEN 'audit_events_error_code'
    WHEN NOT (NEW.diff IS NULL
              OR (jsonb_typeof(NEW.diff) = 'object' AND octet_length(NEW.diff::text) <= 8192))
      THEN 'audit_events_diff'
    WHEN NOT ((NEW.erased_commitment IS NULL) = (NEW.erased_by IS NULL)
              AND (NEW.erased_commitment IS NULL
                   OR (NEW.actor_id IS NULL AND octet_length(NEW.erased_commitment) = 32)))
      THEN 'audit_events_erasure' END;
BEGIN
  IF rule IS NOT NULL THEN
    RAISE EXCEPTION 'trellis: the audit event violates %', rule
      USING ERRCODE = 'check_violation', CONSTRAINT = rule, TABLE = 'audit_events',
            SCHEMA = 'trellis',
            DETAIL = CASE rule
              WHEN 'audit_events_actor_role' THEN 'actor_role is admin, app_user or anonymous'
              WHEN 'audit_events_outcome' THEN 'outcome is allowed, denied or error'
              WHEN 'audit_events_error_code' THEN 'an error_code exactly when the outcome is not allowed'
              WHEN 'audit_events_diff' THEN 'diff is a JSON object of at most 8192 bytes'
              ELSE 'an erased event has no actor, a 32-byte commitment and the seq of its erasure' END;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER audit_events_valid BEFORE INSERT OR UPDATE ON trellis.audit_events
  FOR EACH ROW EXECUTE FUNCTION trellis.audit_events_valid();
