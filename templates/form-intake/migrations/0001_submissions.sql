-- form-intake: submissions to an app's forms. Append-only; soft delete only.
CREATE TABLE trellis.form_intake_submissions (
  id uuid PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  form_id text NOT NULL CHECK (form_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  submitter_id text NOT NULL CHECK (length(submitter_id) BETWEEN 1 AND 200),
  payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  created_at timestamptz NOT NULL,
  deleted_at timestamptz
);
-- Newest first, live rows only: one index for "mine", one for "all of the app".
CREATE INDEX form_intake_by_submitter ON trellis.form_intake_submissions (app_id, submitter_id, id DESC)
  WHERE deleted_at IS NULL;
CREATE INDEX form_intake_by_app ON trellis.form_intake_submissions (app_id, id DESC)
  WHERE deleted_at IS NULL;

-- Append-only: the only change ever allowed is setting deleted_at once.
CREATE FUNCTION trellis.form_intake_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.deleted_at IS NOT NULL OR NEW.deleted_at IS NULL
     OR (NEW.id, NEW.app_id, NEW.form_id, NEW.submitter_id, NEW.payload, NEW.created_at)
        IS DISTINCT FROM (OLD.id, OLD.app_id, OLD.form_id, OLD.submitter_id, OLD.payload, OLD.created_at) THEN
    RAISE EXCEPTION 'trellis: submissions are append-only; only a soft delete is allowed'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER form_intake_append_only BEFORE UPDATE ON trellis.form_intake_submissions
  FOR EACH ROW EXECUTE FUNCTION trellis.form_intake_guard();

REVOKE ALL ON trellis.form_intake_submissions FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.form_intake_submissions TO trellis_gateway;
GRANT UPDATE (deleted_at) ON trellis.form_intake_submissions TO trellis_gateway;

ALTER TABLE trellis.form_intake_submissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.form_intake_submissions FORCE ROW LEVEL SECURITY;
-- Owner-scoped read: a subject sees its own rows; read:all sees the whole app.
CREATE POLICY submissions_read ON trellis.form_intake_submissions FOR SELECT TO trellis_gateway
  USING (app_id = trellis.claim_app()
         AND (submitter_id = trellis.claim_sub() OR trellis.has_scope('read:all')));
CREATE POLICY submissions_create ON trellis.form_intake_submissions FOR INSERT TO trellis_gateway
  WITH CHECK (app_id = trellis.claim_app() AND submitter_id = trellis.claim_sub()
              AND trellis.has_scope('create'));
CREATE POLICY submissions_soft_delete ON trellis.form_intake_submissions FOR UPDATE TO trellis_gateway
  USING (app_id = trellis.claim_app() AND trellis.has_scope('delete')
         AND (submitter_id = trellis.claim_sub() OR trellis.has_scope('read:all')))
  WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations ────────────────────────────────────────────────────────────────────
-- One statement per governed request: each function sets the caller's claims and runs the query
-- under row-level security (SECURITY DEFINER owned by trellis_gateway, so the body runs as that
-- role whoever calls it). Writes also insert their audit event in the same statement, so the
-- change and its event commit together. Reads stay read-only transactions: their events go
-- through the server's audit group commit, durable before the response is sent.
-- ctx: {app_id, sub, scopes (space-separated), token_id, event_id, request_id, at}.

CREATE FUNCTION trellis.gw_form_intake_create(ctx jsonb, p_id uuid, p_form_id text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true);
  INSERT INTO trellis.form_intake_submissions (id, app_id, form_id, submitter_id, payload, created_at)
  VALUES (p_id, ctx->>'app_id', p_form_id, ctx->>'sub', p_payload, (ctx->>'at')::timestamptz);
  PERFORM trellis.audit_write(ctx, 'submission.create', 'submission', p_id::text, 'allowed', NULL);
END $$;

CREATE FUNCTION trellis.gw_form_intake_list(ctx jsonb, p_form_id text, p_before uuid, p_limit integer)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true);
  -- The submitter filter repeats what RLS enforces so the planner can use the index.
  IF trellis.has_scope('read:all') THEN
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx->>'app_id' AND s.submitter_id = ctx->>'sub' AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  END IF;
END $$;

CREATE FUNCTION trellis.gw_form_intake_get(ctx jsonb, p_id uuid)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true);
  -- Absent, deleted, or hidden by RLS all return no row: the caller cannot tell which.
  RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
    WHERE s.id = p_id AND s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL;
END $$;

CREATE FUNCTION trellis.gw_form_intake_delete(ctx jsonb, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true);
  UPDATE trellis.form_intake_submissions s SET deleted_at = (ctx->>'at')::timestamptz
    WHERE s.id = p_id AND s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'denied', 'not_found');
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_form_intake_create(jsonb, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_list(jsonb, text, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_get(jsonb, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_form_intake_delete(jsonb, uuid) OWNER TO trellis_gateway;
