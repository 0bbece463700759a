-- Policy-as-code and the token model of issue 3.
--  * apps carry an environment and their chosen policy blocks (gov_version bumps on every change the gateway must see (blocks, custom policies, pause),
--    so each server re-parses its Cedar policy set only when it changed);
--  * tokens carry row labels and an environment, and remember what they were renewed from;
--  * custom Cedar policies of an app, and approval requests (renewals beyond policy, custom
--    permits) waiting for a steward;
--  * audit events name every policy that decided them.
ALTER TABLE trellis.apps
  ADD COLUMN environment text NOT NULL DEFAULT 'dev' CHECK (environment IN ('dev', 'staging', 'prod')),
  ADD COLUMN policy_blocks text[] NOT NULL DEFAULT '{}',
  ADD COLUMN gov_version integer NOT NULL DEFAULT 1,
  ADD COLUMN paused_at timestamptz;

ALTER TABLE trellis.tokens
  ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
  ADD COLUMN environment text NOT NULL DEFAULT 'dev' CHECK (environment IN ('dev', 'staging', 'prod')),
  ADD COLUMN renewed_from text REFERENCES trellis.tokens (id);

CREATE TABLE trellis.custom_policies (
  app_id text NOT NULL REFERENCES trellis.apps (id),
  id text NOT NULL CHECK (id ~ '^custom\.[a-z0-9][a-z0-9-]{0,47}$'),
  effect text NOT NULL CHECK (effect IN ('permit', 'forbid')),
  cedar text NOT NULL CHECK (length(cedar) BETWEEN 1 AND 10000),
  status text NOT NULL CHECK (status IN ('active', 'pending_approval', 'removed')),
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  PRIMARY KEY (app_id, id)
);

CREATE TABLE trellis.approval_requests (
  id text PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  kind text NOT NULL CHECK (kind IN ('token_renewal', 'custom_permit')),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  reason text NOT NULL,
  request jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL
);
CREATE INDEX approval_requests_app ON trellis.approval_requests (app_id, created_at);
ALTER TABLE trellis.custom_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.approval_requests ENABLE ROW LEVEL SECURITY;

-- More claims, set by the gateway functions next to app_id/sub/scopes:
--   trellis.labels   the token's row labels, "key=value" separated by spaces
--   trellis.env      the token's environment
--   trellis.app_env  the app's environment
--   trellis.blocks   the app's policy blocks, separated by spaces (the same set, same version,
--                    the gateway's Cedar policy set was built from)
CREATE FUNCTION trellis.claim_labels() RETURNS text[] LANGUAGE sql STABLE
  AS $$ SELECT coalesce(string_to_array(nullif(current_setting('trellis.labels', true), ''), ' '), '{}') $$;
CREATE FUNCTION trellis.claim_env() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('trellis.env', true), '') $$;
CREATE FUNCTION trellis.claim_app_env() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('trellis.app_env', true), '') $$;
CREATE FUNCTION trellis.has_block(block text) RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(block = ANY (string_to_array(nullif(current_setting('trellis.blocks', true), ''), ' ')), false) $$;

-- The read side of the policy blocks, shared by every template's read policy. None looks at a
-- row: a policy calls them as (SELECT trellis.…()) so each runs once per query, not per row.
-- app-read or admin-read: every row of the app.
CREATE FUNCTION trellis.reads_all() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT (trellis.has_block('app-read') AND trellis.has_scope('read:all'))
      OR (trellis.has_block('admin-read') AND trellis.has_scope('admin:read'))
$$;
-- owner-read: the caller's own rows.
CREATE FUNCTION trellis.reads_own() RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT trellis.has_block('owner-read') AND trellis.has_scope('read') $$;
-- assigned-reviewer: rows assigned to the caller.
CREATE FUNCTION trellis.reads_assigned() RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT trellis.has_block('assigned-reviewer') AND trellis.has_scope('read') $$;
-- label-scoped is off: no label condition on rows.
CREATE FUNCTION trellis.labels_unrestricted() RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT NOT trellis.has_block('label-scoped') $$;

-- The write side of the policy blocks, shared by every template's write policies (plain SQL
-- functions: the planner inlines them into the policy, so they cost what the expression does).
-- owner-write: the caller holds the action's scope and owns the row.
CREATE FUNCTION trellis.owner_may_write(action text, owner text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT trellis.has_block('owner-write') AND trellis.has_scope(action)
         AND owner = trellis.claim_sub()
$$;
-- read-only, prod-writes-only and label-scoped: no forbid block stops a write of this row.
CREATE FUNCTION trellis.no_write_forbid(row_labels text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT NOT trellis.has_block('read-only')
     AND NOT (trellis.has_block('prod-writes-only') AND trellis.claim_app_env() = 'prod'
              AND trellis.claim_env() IS DISTINCT FROM 'prod')
     AND (NOT trellis.has_block('label-scoped')
          OR (cardinality(trellis.claim_labels()) > 0 AND row_labels @> trellis.claim_labels()))
$$;

-- Sets every claim of a governed request, transaction-local. Template gateway functions inline
-- the same set_config calls on their hottest paths; this is for the rest.
CREATE FUNCTION trellis.set_claims(ctx jsonb) RETURNS void LANGUAGE sql AS $$
  SELECT set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
         set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
         set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true),
         set_config('trellis.labels', coalesce(ctx->>'labels', ''), true),
         set_config('trellis.env', coalesce(ctx->>'env', ''), true),
         set_config('trellis.app_env', coalesce(ctx->>'app_env', ''), true),
         set_config('trellis.blocks', coalesce(ctx->>'blocks', ''), true);
$$;

-- ── audit: the policies behind each decision ──────────────────────────────────────────────
ALTER TABLE trellis.audit_events RENAME COLUMN policy_id TO policy_ids;
ALTER TABLE trellis.audit_events ALTER COLUMN policy_ids TYPE text[]
  USING string_to_array(policy_ids, ' ');

-- ctx->>'policy_ids': the decision's policy ids, separated by spaces.
CREATE OR REPLACE FUNCTION trellis.audit_write(ctx jsonb, action text, resource_type text, resource_id text,
                                    outcome text, error_code text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id)
  VALUES (ctx->>'event_id', (ctx->>'at')::timestamptz, ctx->>'sub', 'app_user', action,
    resource_type, resource_id, ctx->>'app_id', ctx->>'token_id',
    string_to_array(nullif(ctx->>'policy_ids', ''), ' '), outcome, error_code, ctx->>'request_id');
END $$;

CREATE OR REPLACE FUNCTION trellis.audit_append(events jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id)
  SELECT x.event_id, x.occurred_at, x.actor_id, x.actor_role, x.action, x.resource_type,
         x.resource_id, x.app_id, x.token_id, x.policy_ids, x.outcome, x.error_code, x.request_id
    FROM ROWS FROM (jsonb_to_recordset(events) AS (event_id text, occurred_at timestamptz,
           actor_id text, actor_role text, action text, resource_type text, resource_id text,
           app_id text, token_id text, policy_ids text[], outcome text, error_code text,
           request_id text)) WITH ORDINALITY AS x(event_id, occurred_at, actor_id, actor_role,
           action, resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code,
           request_id, ord)
   ORDER BY x.ord;
END $$;
