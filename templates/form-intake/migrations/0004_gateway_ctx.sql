-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_form_intake_list(jsonb, text, uuid, integer);
DROP FUNCTION trellis.gw_form_intake_get(jsonb, uuid);
DROP FUNCTION trellis.gw_form_intake_delete(jsonb, uuid);
DROP FUNCTION trellis.gw_form_intake_create(jsonb, uuid, text, jsonb, text);

CREATE FUNCTION trellis.gw_form_intake_list(ctx trellis.gw_ctx, p_form_id text, p_before uuid, p_limit integer)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('trellis.app_id', coalesce(ctx.app_id, ''), true),
          set_config('trellis.sub', coalesce(ctx.sub, ''), true),
          set_config('trellis.scopes', ' ' || coalesce(ctx.scopes, '') || ' ', true),
          set_config('trellis.labels', coalesce(ctx.labels, ''), true),
          set_config('trellis.env', coalesce(ctx.env, ''), true),
          set_config('trellis.app_env', coalesce(ctx.app_env, ''), true),
          set_config('trellis.blocks', ' ' || coalesce(ctx.blocks, '') || ' ', true);
  -- Row-level security decides what is visible; the branches only help the planner pick an
  -- index: when no app-wide block applies, every visible row is the caller's own or assigned.
  IF trellis.reads_all() THEN
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx.app_id AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  ELSIF NOT trellis.reads_assigned() THEN
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx.app_id AND s.submitter_id = ctx.sub AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx.app_id
        AND (s.submitter_id = ctx.sub OR s.reviewer_id = ctx.sub) AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  END IF;
END $$;

CREATE FUNCTION trellis.gw_form_intake_get(ctx trellis.gw_ctx, p_id uuid)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Absent, deleted, or hidden by RLS all return no row: the caller cannot tell which.
  RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
    WHERE s.id = p_id AND s.app_id = ctx.app_id AND s.deleted_at IS NULL;
END $$;

CREATE FUNCTION trellis.gw_form_intake_delete(ctx trellis.gw_ctx, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  UPDATE trellis.form_intake_submissions s SET deleted_at = ctx.at
    WHERE s.id = p_id AND s.app_id = ctx.app_id AND s.deleted_at IS NULL;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'denied', 'not_found');
  RETURN false;
END $$;

CREATE FUNCTION trellis.gw_form_intake_create(ctx trellis.gw_ctx, p_id uuid, p_form_id text, p_payload jsonb, p_reviewer text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx.app_id, ''), true),
          set_config('trellis.sub', coalesce(ctx.sub, ''), true),
          set_config('trellis.scopes', ' ' || coalesce(ctx.scopes, '') || ' ', true),
          set_config('trellis.labels', coalesce(ctx.labels, ''), true),
          set_config('trellis.env', coalesce(ctx.env, ''), true),
          set_config('trellis.app_env', coalesce(ctx.app_env, ''), true),
          set_config('trellis.blocks', ' ' || coalesce(ctx.blocks, '') || ' ', true);
  -- A new row carries its creator's row labels.
  INSERT INTO trellis.form_intake_submissions
    (id, app_id, form_id, submitter_id, payload, created_at, labels, reviewer_id)
  VALUES (p_id, ctx.app_id, p_form_id, ctx.sub, p_payload, ctx.at,
          coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}'), p_reviewer);
  PERFORM trellis.audit_write(ctx, 'submission.create', 'submission', p_id::text, 'allowed', NULL);
END $$;

ALTER FUNCTION trellis.gw_form_intake_list(trellis.gw_ctx, text, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_get(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_delete(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_create(trellis.gw_ctx, uuid, text, jsonb, text) OWNER TO trellis_gateway;
