-- Where each shared audit sink (the webhook) has delivered to: every leaf below `delivered` was
-- acknowledged. The file sink keeps its position in the file itself (its last line).
CREATE TABLE trellis.audit_sink_positions (
  name text PRIMARY KEY CHECK (length(name) <= 200),
  delivered bigint NOT NULL DEFAULT 0 CHECK (delivered >= 0),
  updated_at timestamptz NOT NULL
);
REVOKE ALL ON trellis.audit_sink_positions FROM PUBLIC;
ALTER TABLE trellis.audit_sink_positions ENABLE ROW LEVEL SECURITY;
