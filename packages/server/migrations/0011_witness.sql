-- Witnessing (C2SP tlog-witness, tlog-cosignature/v1 Ed25519):
--  * witness_keys: this instance's cosigner key, distinct from its log key (the cosignature
--    format does not commit to the cosigner's name);
--  * witness_heads: per log this instance witnesses, the largest consistent checkpoint it has
--    cosigned (it only ever moves forward, along a verified consistency proof);
--  * audit_cosignatures: cosignatures other witnesses returned for this log's checkpoints.
CREATE TABLE trellis.witness_keys (
  kid text PRIMARY KEY CHECK (length(kid) <= 100),
  name text NOT NULL CHECK (length(name) <= 200),
  public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
  private_jwk_sealed text NOT NULL CHECK (length(private_jwk_sealed) <= 2000),
  created_at timestamptz NOT NULL
);
CREATE TABLE trellis.witness_heads (
  origin text PRIMARY KEY CHECK (length(origin) <= 200),
  tree_size bigint NOT NULL CHECK (tree_size >= 0),
  root bytea NOT NULL CHECK (octet_length(root) = 32),
  updated_at timestamptz NOT NULL
);
CREATE TABLE trellis.audit_cosignatures (
  tree_size bigint NOT NULL CHECK (tree_size > 0),
  witness text NOT NULL CHECK (length(witness) <= 200),
  line text NOT NULL CHECK (length(line) <= 1000),
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tree_size, witness)
);
CREATE TRIGGER witness_keys_append_only BEFORE UPDATE OR DELETE ON trellis.witness_keys
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER audit_cosignatures_append_only BEFORE UPDATE OR DELETE ON trellis.audit_cosignatures
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
REVOKE ALL ON trellis.witness_keys, trellis.witness_heads, trellis.audit_cosignatures FROM PUBLIC;
ALTER TABLE trellis.witness_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.witness_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_cosignatures ENABLE ROW LEVEL SECURITY;
