-- Audit events carry what changed: a transition's {"state": {"from": …, "to": …}}, a template
-- upgrade's steps, an import's counts. Bounded so the log stays small; null when nothing changed.
ALTER TABLE trellis.audit_events ADD COLUMN diff jsonb
  CHECK (diff IS NULL OR (jsonb_typeof(diff) = 'object' AND octet_length(diff::text) <= 8192));

-- ctx->'diff' (optional): the change this event records.
CREATE OR REPLACE FUNCTION trellis.audit_write(ctx jsonb, action text, resource_type text, resource_id text,
                                    outcome text, error_code text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id, diff)
  VALUES (ctx->>'event_id', (ctx->>'at')::timestamptz, ctx->>'sub', 'app_user', action,
    resource_type, resource_id, ctx->>'app_id', ctx->>'token_id',
    string_to_array(nullif(ctx->>'policy_ids', ''), ' '), outcome, error_code, ctx->>'request_id',
    ctx->'diff');
END $$;

CREATE OR REPLACE FUNCTION trellis.audit_append(events jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id, diff)
  SELECT x.event_id, x.occurred_at, x.actor_id, x.actor_role, x.action, x.resource_type,
         x.resource_id, x.app_id, x.token_id, x.policy_ids, x.outcome, x.error_code, x.request_id,
         x.diff
    FROM ROWS FROM (jsonb_to_recordset(events) AS (event_id text, occurred_at timestamptz,
           actor_id text, actor_role text, action text, resource_type text, resource_id text,
           app_id text, token_id text, policy_ids text[], outcome text, error_code text,
           request_id text, diff jsonb)) WITH ORDINALITY AS x(event_id, occurred_at, actor_id,
           actor_role, action, resource_type, resource_id, app_id, token_id, policy_ids, outcome,
           error_code, request_id, diff, ord)
   ORDER BY x.ord;
END $$;
