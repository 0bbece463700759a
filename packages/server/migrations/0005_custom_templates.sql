-- People on the control plane and custom templates.
--  * admin credentials get a name and roles: `admin` (runs the control plane) and `steward`
--    (approves what needs a second person: custom templates);
--  * custom templates: named variants of a built-in template (its tables, scopes and gateway,
--    with their own title, description, retention, default blocks and payload schema). An admin
--    submits a version as a draft; a steward who is not the submitter approves or rejects it;
--    only approved versions reach the catalog.
ALTER TABLE trellis.admin_credentials
  ADD COLUMN name text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 100),
  ADD COLUMN roles text[] NOT NULL DEFAULT '{admin,steward}'
    CHECK (cardinality(roles) BETWEEN 1 AND 2 AND roles <@ ARRAY['admin', 'steward']),
  ADD COLUMN created_by text CHECK (created_by IS NULL OR length(created_by) <= 200);

CREATE TABLE trellis.custom_templates (
  id text NOT NULL CHECK (id ~ '^[a-z][a-z0-9-]{1,40}$'),
  version integer NOT NULL CHECK (version BETWEEN 1 AND 10000),
  base text NOT NULL CHECK (base ~ '^[a-z][a-z0-9-]{1,40}$'),
  definition jsonb NOT NULL
    CHECK (jsonb_typeof(definition) = 'object' AND octet_length(definition::text) <= 65536),
  status text NOT NULL CHECK (status IN ('draft', 'approved', 'rejected')),
  submitted_by text NOT NULL CHECK (length(submitted_by) <= 200),
  submitted_at timestamptz NOT NULL,
  decided_by text CHECK (length(decided_by) <= 200),
  decided_at timestamptz,
  decision_note text CHECK (length(decision_note) <= 1000),
  PRIMARY KEY (id, version),
  CHECK ((status = 'draft') = (decided_by IS NULL AND decided_at IS NULL)),
  -- Four eyes, in the schema: whoever submitted a version never decides it.
  CONSTRAINT custom_templates_four_eyes CHECK (decided_by IS DISTINCT FROM submitted_by)
);

-- A version's definition never changes; its status moves once, from draft to a decision.
CREATE FUNCTION trellis.custom_templates_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.version, NEW.base, NEW.definition, NEW.submitted_by, NEW.submitted_at)
       IS DISTINCT FROM (OLD.id, OLD.version, OLD.base, OLD.definition, OLD.submitted_by, OLD.submitted_at)
     OR OLD.status <> 'draft' THEN
    RAISE EXCEPTION 'trellis: a custom template version is decided once and never edited'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER custom_templates_guard BEFORE UPDATE ON trellis.custom_templates
  FOR EACH ROW EXECUTE FUNCTION trellis.custom_templates_guard();
CREATE TRIGGER custom_templates_no_delete BEFORE DELETE ON trellis.custom_templates
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();

REVOKE ALL ON trellis.custom_templates FROM PUBLIC;
ALTER TABLE trellis.custom_templates ENABLE ROW LEVEL SECURITY;
