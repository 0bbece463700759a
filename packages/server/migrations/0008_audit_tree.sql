-- The verifiable audit log (RFC 9162 Merkle tree, C2SP signed checkpoints).
--  * audit_leaves: leaf index ↔ event, with the leaf hash; audit_tree: the hash of every
--    complete, aligned subtree above the leaves (level ≥ 1), enough to compute any root or proof
--    in O(log n) reads;
--  * audit_checkpoints: every signed checkpoint;
--  * audit_log_state: the sequencer's position: every event with seq ≤ hi_seq is in the tree
--    except the `holes` (seq values not visible when passed: a transaction still running then,
--    or one that rolled back; see modules/transparency/README.md). Nothing is added to the
--    write path of audit events;
--  * audit_log_keys: the Ed25519 key that signs checkpoints (private part sealed like the token
--    keys).
-- Leaves, nodes, checkpoints and keys are append-only for every role.
CREATE TABLE trellis.audit_leaves (
  leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
  -- No foreign key: audit_events must stay untruncatable by its trigger alone, and retention
  -- will prune event payloads while their leaves stay.
  event_seq bigint NOT NULL UNIQUE,
  hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE TABLE trellis.audit_tree (
  level smallint NOT NULL CHECK (level BETWEEN 1 AND 62),
  idx bigint NOT NULL CHECK (idx >= 0),
  hash bytea NOT NULL CHECK (octet_length(hash) = 32),
  PRIMARY KEY (level, idx)
);
CREATE TABLE trellis.audit_checkpoints (
  tree_size bigint PRIMARY KEY CHECK (tree_size > 0),
  root bytea NOT NULL CHECK (octet_length(root) = 32),
  note text NOT NULL CHECK (length(note) <= 4000),
  created_at timestamptz NOT NULL
);
CREATE TABLE trellis.audit_log_state (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  tree_size bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
  hi_seq bigint NOT NULL DEFAULT 0,
  holes jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(holes) = 'array')
);
INSERT INTO trellis.audit_log_state DEFAULT VALUES;
CREATE TABLE trellis.audit_log_keys (
  kid text PRIMARY KEY CHECK (length(kid) <= 100),
  origin text NOT NULL CHECK (length(origin) <= 200),
  public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
  private_jwk_sealed text NOT NULL CHECK (length(private_jwk_sealed) <= 2000),
  created_at timestamptz NOT NULL
);

CREATE TRIGGER audit_leaves_append_only BEFORE UPDATE OR DELETE ON trellis.audit_leaves
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER audit_tree_append_only BEFORE UPDATE OR DELETE ON trellis.audit_tree
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON trellis.audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER audit_log_keys_append_only BEFORE UPDATE OR DELETE ON trellis.audit_log_keys
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();

REVOKE ALL ON trellis.audit_leaves, trellis.audit_tree, trellis.audit_checkpoints,
  trellis.audit_log_state, trellis.audit_log_keys FROM PUBLIC;
ALTER TABLE trellis.audit_leaves ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_tree ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_log_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_log_keys ENABLE ROW LEVEL SECURITY;
