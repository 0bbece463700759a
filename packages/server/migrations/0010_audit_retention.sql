-- Audit retention: old events' payloads may be pruned while their leaves (hashes) stay, so the
-- tree and every checkpoint still verify. A DELETE on audit_events is refused for every role,
-- except inside a prune: the transaction names, in trellis.audit_prune_below, the leaf below
-- which rows may go, and only rows already in the tree below it are deleted. The prune is an
-- audit event itself (`audit.prune`, diff {below_leaf}) in the log, which is what lets
-- `trellis audit verify` accept exactly those missing rows and no others.
CREATE FUNCTION trellis.audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  below bigint := nullif(current_setting('trellis.audit_prune_below', true), '')::bigint;
BEGIN
  IF TG_OP = 'DELETE' AND below IS NOT NULL AND EXISTS (
       SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = OLD.seq AND l.leaf_index < below) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'trellis: % on %.% is refused: this table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER audit_events_append_only ON trellis.audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON trellis.audit_events
  FOR EACH ROW EXECUTE FUNCTION trellis.audit_events_guard();
-- The owner deletes only in a prune (the trigger decides which rows).
CREATE POLICY audit_owner_prune ON trellis.audit_events FOR DELETE TO CURRENT_USER USING (true);
