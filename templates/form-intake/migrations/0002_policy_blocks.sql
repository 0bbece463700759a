-- form-intake under policy blocks (issue 3): rows carry the creator's row labels and an optional
-- assigned reviewer; row-level security is the SQL form of the app's chosen policy blocks.
--
-- Each block's SQL predicate mirrors its Cedar policy (packages/server/src/modules/policy/
-- blocks.ts); property tests prove they decide alike (test/policy-equivalence.test.ts).
-- In the read policy, row-independent parts are wrapped in (SELECT ...) so PostgreSQL evaluates
-- them once per query (an InitPlan), not once per row of a list.
ALTER TABLE trellis.form_intake_submissions
  ADD COLUMN labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  ADD COLUMN reviewer_id text CHECK (length(reviewer_id) BETWEEN 1 AND 200);
CREATE INDEX form_intake_by_reviewer ON trellis.form_intake_submissions (app_id, reviewer_id, id DESC)
  WHERE deleted_at IS NULL AND reviewer_id IS NOT NULL;

CREATE OR REPLACE FUNCTION trellis.form_intake_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.deleted_at IS NOT NULL OR NEW.deleted_at IS NULL
     OR (NEW.id, NEW.app_id, NEW.form_id, NEW.submitter_id, NEW.payload, NEW.created_at,
         NEW.labels, NEW.reviewer_id)
        IS DISTINCT FROM (OLD.id, OLD.app_id, OLD.form_id, OLD.submitter_id, OLD.payload,
         OLD.created_at, OLD.labels, OLD.reviewer_id) THEN
    RAISE EXCEPTION 'trellis: submissions are append-only; only a soft delete is allowed'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;

DROP POLICY submissions_read ON trellis.form_intake_submissions;
DROP POLICY submissions_create ON trellis.form_intake_submissions;
DROP POLICY submissions_soft_delete ON trellis.form_intake_submissions;

-- read: any permit block that matches, and no forbid block that matches.
CREATE POLICY submissions_read ON trellis.form_intake_submissions FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND submitter_id = (SELECT trellis.claim_sub()))
      OR ((SELECT trellis.reads_assigned()) AND reviewer_id = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );

-- create: owner-write for "create", and no forbid block stops it (trellis.owner_may_write and
-- trellis.no_write_forbid are in the core migrations; the planner inlines them). No (SELECT ...)
-- wrappers in the write policies: they check one row, where an InitPlan per term costs more.
CREATE POLICY submissions_create ON trellis.form_intake_submissions FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('create', submitter_id)
    AND trellis.no_write_forbid(labels)
  );

-- delete (a soft delete is an UPDATE; PostgreSQL also applies the read policy to it, so what
-- you cannot read you cannot delete: Cedar's side checks "read" too, see app-policy.ts).
CREATE POLICY submissions_soft_delete ON trellis.form_intake_submissions FOR UPDATE TO trellis_gateway
  USING (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('delete', submitter_id)
    AND trellis.no_write_forbid(labels)
  )
  WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations, now with every claim ──────────────────────────────────────────────
-- ctx: {app_id, sub, scopes, labels, env, app_env, blocks (space-separated), token_id,
--       event_id, request_id, at, policy_ids (space-separated)}.
DROP FUNCTION trellis.gw_form_intake_create(jsonb, uuid, text, jsonb);

CREATE FUNCTION trellis.gw_form_intake_create(ctx jsonb, p_id uuid, p_form_id text, p_payload jsonb,
                                              p_reviewer text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- The caller's claims, transaction-local (inline: a nested function call costs ~7% here).
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true),
          set_config('trellis.labels', coalesce(ctx->>'labels', ''), true),
          set_config('trellis.env', coalesce(ctx->>'env', ''), true),
          set_config('trellis.app_env', coalesce(ctx->>'app_env', ''), true),
          set_config('trellis.blocks', coalesce(ctx->>'blocks', ''), true);
  -- A new row carries its creator's row labels.
  INSERT INTO trellis.form_intake_submissions
    (id, app_id, form_id, submitter_id, payload, created_at, labels, reviewer_id)
  VALUES (p_id, ctx->>'app_id', p_form_id, ctx->>'sub', p_payload, (ctx->>'at')::timestamptz,
          coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}'), p_reviewer);
  PERFORM trellis.audit_write(ctx, 'submission.create', 'submission', p_id::text, 'allowed', NULL);
END $$;

CREATE OR REPLACE FUNCTION trellis.gw_form_intake_list(ctx jsonb, p_form_id text, p_before uuid, p_limit integer)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true),
          set_config('trellis.labels', coalesce(ctx->>'labels', ''), true),
          set_config('trellis.env', coalesce(ctx->>'env', ''), true),
          set_config('trellis.app_env', coalesce(ctx->>'app_env', ''), true),
          set_config('trellis.blocks', coalesce(ctx->>'blocks', ''), true);
  -- Row-level security decides what is visible; the branches only help the planner pick an
  -- index: when no app-wide block applies, every visible row is the caller's own or assigned.
  IF trellis.reads_all() THEN
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  ELSIF NOT trellis.reads_assigned() THEN
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx->>'app_id' AND s.submitter_id = ctx->>'sub' AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
      WHERE s.app_id = ctx->>'app_id'
        AND (s.submitter_id = ctx->>'sub' OR s.reviewer_id = ctx->>'sub') AND s.deleted_at IS NULL
        AND (p_form_id IS NULL OR s.form_id = p_form_id) AND (p_before IS NULL OR s.id < p_before)
      ORDER BY s.id DESC LIMIT p_limit;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION trellis.gw_form_intake_get(ctx jsonb, p_id uuid)
RETURNS SETOF trellis.form_intake_submissions LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Absent, deleted, or hidden by RLS all return no row: the caller cannot tell which.
  RETURN QUERY SELECT * FROM trellis.form_intake_submissions s
    WHERE s.id = p_id AND s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL;
END $$;

CREATE OR REPLACE FUNCTION trellis.gw_form_intake_delete(ctx jsonb, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  UPDATE trellis.form_intake_submissions s SET deleted_at = (ctx->>'at')::timestamptz
    WHERE s.id = p_id AND s.app_id = ctx->>'app_id' AND s.deleted_at IS NULL;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  PERFORM trellis.audit_write(ctx, 'submission.delete', 'submission', p_id::text, 'denied', 'not_found');
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_form_intake_create(jsonb, uuid, text, jsonb, text) OWNER TO trellis_gateway;
