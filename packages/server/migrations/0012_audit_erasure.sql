-- Erasure without breaking proofs (GDPR): an event's personal part (its actor, and
-- `diff.personal`: what the actor submitted about themselves) is not hashed into its leaf.
-- The leaf commits to it through a salted commitment
--   personal = SHA-256(0x02 || salt || RFC 8785({actor_id, diff_personal}))
-- whose salt is derived per event from a per-subject key: salt = HMAC-SHA-256(key, event_id).
-- Erasing a subject deletes its key and replaces the personal part of its events with the
-- commitment they were logged with: every leaf still verifies, and a guessable value (an email)
-- cannot be confirmed by hashing candidates, because the salts are gone with the key.
-- See modules/transparency/README.md ("Erasure").
--
--  * audit_subject_keys: one random key per subject (actor_id), created by the sequencer when it
--    first meets the subject; deleted only by an erasure;
--  * audit_events.erased_commitment / erased_by: set once, by an erasure, with the seq of the
--    `audit.erase` event written in the same transaction; the guard lets exactly that change
--    through (actor_id to NULL, diff to diff minus "personal", nothing else);
--  * audit_log_state.personal_from: leaves below it were logged before this migration, in the
--    first form (the whole event hashed); they cannot be erased.
CREATE TABLE trellis.audit_subject_keys (
  subject text PRIMARY KEY,
  key bytea NOT NULL CHECK (octet_length(key) = 32),
  created_at timestamptz NOT NULL
);
CREATE TRIGGER audit_subject_keys_no_update BEFORE UPDATE ON trellis.audit_subject_keys
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
-- A key goes only in an erasure (which erases its events in the same transaction).
CREATE FUNCTION trellis.audit_subject_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nullif(current_setting('trellis.audit_erasure', true), '') IS NOT NULL THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'trellis: a subject key is deleted only by an erasure'
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_subject_keys_erase_only BEFORE DELETE ON trellis.audit_subject_keys
  FOR EACH ROW EXECUTE FUNCTION trellis.audit_subject_keys_guard();
CREATE TRIGGER audit_subject_keys_no_truncate BEFORE TRUNCATE ON trellis.audit_subject_keys
  FOR EACH STATEMENT EXECUTE FUNCTION trellis.refuse_change();
REVOKE ALL ON trellis.audit_subject_keys FROM PUBLIC;
ALTER TABLE trellis.audit_subject_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE trellis.audit_events
  ADD COLUMN erased_commitment bytea CHECK (octet_length(erased_commitment) = 32),
  ADD COLUMN erased_by bigint,
  ADD CHECK ((erased_commitment IS NULL) = (erased_by IS NULL)),
  ADD CHECK (erased_commitment IS NULL OR actor_id IS NULL);

ALTER TABLE trellis.audit_log_state ADD COLUMN personal_from bigint;
UPDATE trellis.audit_log_state SET personal_from = tree_size;
ALTER TABLE trellis.audit_log_state ALTER COLUMN personal_from SET NOT NULL;

-- The guard of 0010 plus the erasure: inside an erasure (trellis.audit_erasure names the seq of
-- its `audit.erase` event), an event in the tree at or above personal_from, not erased yet, may
-- lose its actor and diff.personal, and take the commitment; every other column stays.
CREATE OR REPLACE FUNCTION trellis.audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  below bigint := nullif(current_setting('trellis.audit_prune_below', true), '')::bigint;
  erasure bigint := nullif(current_setting('trellis.audit_erasure', true), '')::bigint;
BEGIN
  IF TG_OP = 'DELETE' AND below IS NOT NULL AND EXISTS (
       SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = OLD.seq AND l.leaf_index < below) THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND erasure IS NOT NULL
     AND OLD.erased_commitment IS NULL AND OLD.actor_id IS NOT NULL
     AND NEW.actor_id IS NULL AND NEW.erased_by = erasure AND NEW.erased_commitment IS NOT NULL
     AND NEW.diff IS NOT DISTINCT FROM (OLD.diff - 'personal')
     AND (NEW.seq, NEW.event_id, NEW.occurred_at, NEW.actor_role, NEW.action, NEW.resource_type,
          NEW.resource_id, NEW.app_id, NEW.token_id, NEW.policy_ids, NEW.outcome,
          NEW.error_code, NEW.request_id)
         IS NOT DISTINCT FROM
         (OLD.seq, OLD.event_id, OLD.occurred_at, OLD.actor_role, OLD.action, OLD.resource_type,
          OLD.resource_id, OLD.app_id, OLD.token_id, OLD.policy_ids, OLD.outcome,
          OLD.error_code, OLD.request_id)
     AND EXISTS (SELECT 1 FROM trellis.audit_leaves l, trellis.audit_log_state s
                  WHERE l.event_seq = OLD.seq AND l.leaf_index >= s.personal_from) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'trellis: % on %.% is refused: this table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
-- The owner updates only in an erasure (the trigger decides which rows and which columns).
CREATE POLICY audit_owner_erase ON trellis.audit_events FOR UPDATE TO CURRENT_USER
  USING (true) WITH CHECK (true);
