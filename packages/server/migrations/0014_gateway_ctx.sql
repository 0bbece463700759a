-- The governed request's context as a composite type instead of jsonb (issue 5, fifth session).
--
-- Every gateway function took its context as one jsonb and read it with `ctx->>'field'`: the
-- text was parsed into jsonb on every call, and each `->>` was a function call that PostgreSQL
-- permission-checks and looks up at every statement. Fields of a composite are read without a
-- function call. Counted by callgrind (bench/sql-cost.ts), a governed form-intake create went
-- from ~838 000 to ~759 000 backend instructions with this alone; see docs/benchmarks.md.
-- The template migrations `000N_gateway_ctx.sql` move every gateway function to this type.
--
-- Servers that share a database run one version: a server of an earlier version calls the
-- jsonb functions, which are gone once a newer one has migrated (it then gets an error, never a
-- write without its claims or its audit event).
CREATE TYPE trellis.gw_ctx AS (
  app_id text,
  sub text,
  -- Space-separated lists, as the token and the app give them.
  scopes text,
  labels text,
  env text,
  app_env text,
  blocks text,
  policy_ids text,
  token_id text,
  event_id text,
  request_id text,
  at timestamptz,
  -- What the audit event records as changed (`personal` is the actor's own data), or null.
  diff jsonb
);

-- The scope and block claims are stored between spaces (" create read "), so membership is
-- one strpos on the setting instead of splitting it into an array at each test: row-level
-- security calls these several times per written row. A name matches a whole word of the list
-- (never an empty name or one with a space: the guards fold away when a policy inlines the
-- call with a constant name). An unset claim (NULL) holds nothing.
CREATE OR REPLACE FUNCTION trellis.has_scope(scope text) RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(scope <> '' AND strpos(scope, ' ') = 0
                        AND strpos(current_setting('trellis.scopes', true), ' ' || scope || ' ') > 0, false) $$;
CREATE OR REPLACE FUNCTION trellis.has_block(block text) RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(block <> '' AND strpos(block, ' ') = 0
                        AND strpos(current_setting('trellis.blocks', true), ' ' || block || ' ') > 0, false) $$;

-- Sets every claim of a governed request, transaction-local. Template gateway functions inline
-- the same set_config calls on their hottest paths; this is for the rest.
DROP FUNCTION trellis.set_claims(jsonb);
CREATE FUNCTION trellis.set_claims(ctx trellis.gw_ctx) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('trellis.app_id', coalesce(ctx.app_id, ''), true),
          set_config('trellis.sub', coalesce(ctx.sub, ''), true),
          set_config('trellis.scopes', ' ' || coalesce(ctx.scopes, '') || ' ', true),
          set_config('trellis.labels', coalesce(ctx.labels, ''), true),
          set_config('trellis.env', coalesce(ctx.env, ''), true),
          set_config('trellis.app_env', coalesce(ctx.app_env, ''), true),
          set_config('trellis.blocks', ' ' || coalesce(ctx.blocks, '') || ' ', true);
END $$;

-- Writes one gateway audit event from the request context; called inside gateway functions so
-- the event commits or rolls back with the data change.
DROP FUNCTION trellis.audit_write(jsonb, text, text, text, text, text);
CREATE FUNCTION trellis.audit_write(ctx trellis.gw_ctx, action text, resource_type text,
                                    resource_id text, outcome text, error_code text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id, diff)
  VALUES (ctx.event_id, ctx.at, ctx.sub, 'app_user', action,
    resource_type, resource_id, ctx.app_id, ctx.token_id,
    string_to_array(nullif(ctx.policy_ids, ''), ' '), outcome, error_code, ctx.request_id,
    ctx.diff);
END $$;
