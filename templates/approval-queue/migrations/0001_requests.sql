-- approval-queue: requests that move requested → reviewing → approved | rejected, or are
-- withdrawn by their requester before a decision. The state machine lives in the schema: an
-- enum for the states, one function that names the action each legal move needs, and a
-- trigger that refuses every other change, for every role.
CREATE TYPE trellis.approval_queue_state AS ENUM
  ('requested', 'reviewing', 'approved', 'rejected', 'withdrawn');

CREATE TABLE trellis.approval_queue_requests (
  id uuid PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  requester_id text NOT NULL CHECK (length(requester_id) BETWEEN 1 AND 200),
  assigned_reviewer text NOT NULL CHECK (length(assigned_reviewer) BETWEEN 1 AND 200),
  payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  state trellis.approval_queue_state NOT NULL DEFAULT 'requested',
  labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  -- Separation of duties: nobody reviews their own request.
  CONSTRAINT approval_queue_not_self_review CHECK (assigned_reviewer <> requester_id)
);
CREATE INDEX approval_queue_by_requester ON trellis.approval_queue_requests (app_id, requester_id, id DESC);
CREATE INDEX approval_queue_by_reviewer ON trellis.approval_queue_requests (app_id, assigned_reviewer, id DESC);
CREATE INDEX approval_queue_by_state ON trellis.approval_queue_requests (app_id, state, id DESC);

-- The action a move from one state to another needs, or null when the move is not legal.
-- `review` belongs to the assigned reviewer, `withdraw` to the requester (see the policies).
-- Keep in step with state_machine in manifest.json (test/approval-queue.test.ts compares them).
CREATE FUNCTION trellis.approval_queue_move(from_state trellis.approval_queue_state,
                                            to_state trellis.approval_queue_state)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN from_state = 'requested' AND to_state = 'reviewing' THEN 'review'
    WHEN from_state = 'reviewing' AND to_state IN ('approved', 'rejected') THEN 'review'
    WHEN from_state IN ('requested', 'reviewing') AND to_state = 'withdrawn' THEN 'withdraw'
  END
$$;

-- Only the state (by a legal move, under the action that move needs) and updated_at change.
CREATE FUNCTION trellis.approval_queue_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  needed text;
BEGIN
  IF (NEW.id, NEW.app_id, NEW.requester_id, NEW.assigned_reviewer, NEW.payload, NEW.labels,
      NEW.created_at)
     IS DISTINCT FROM (OLD.id, OLD.app_id, OLD.requester_id, OLD.assigned_reviewer, OLD.payload,
      OLD.labels, OLD.created_at) THEN
    RAISE EXCEPTION 'trellis: only the state of an approval request may change'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.state IS DISTINCT FROM OLD.state THEN
    needed := trellis.approval_queue_move(OLD.state, NEW.state);
    IF needed IS NULL
       OR needed IS DISTINCT FROM nullif(current_setting('trellis.write_action', true), '') THEN
      RAISE EXCEPTION 'trellis: % → % is not a legal move of an approval request', OLD.state, NEW.state
        USING ERRCODE = 'check_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER approval_queue_guard BEFORE UPDATE ON trellis.approval_queue_requests
  FOR EACH ROW EXECUTE FUNCTION trellis.approval_queue_guard();
CREATE TRIGGER approval_queue_no_delete BEFORE DELETE ON trellis.approval_queue_requests
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();

REVOKE ALL ON trellis.approval_queue_requests FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.approval_queue_requests TO trellis_gateway;
GRANT UPDATE (state, updated_at) ON trellis.approval_queue_requests TO trellis_gateway;

ALTER TABLE trellis.approval_queue_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.approval_queue_requests FORCE ROW LEVEL SECURITY;

CREATE POLICY requests_read ON trellis.approval_queue_requests FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND requester_id = (SELECT trellis.claim_sub()))
      OR ((SELECT trellis.reads_assigned()) AND assigned_reviewer = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );
-- Only the requester creates, and every request starts at the beginning.
CREATE POLICY requests_create ON trellis.approval_queue_requests FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND state = 'requested'
    AND trellis.owner_may_write('create', requester_id)
    AND trellis.no_write_forbid(labels)
  );
-- A move is `withdraw` (the requester, owner-write) or `review` (the assigned reviewer, with the
-- assigned-reviewer block); the gateway function names which in trellis.write_action.
CREATE POLICY requests_move ON trellis.approval_queue_requests FOR UPDATE TO trellis_gateway
  USING (
    app_id = trellis.claim_app()
    AND trellis.no_write_forbid(labels)
    AND CASE nullif(current_setting('trellis.write_action', true), '')
      WHEN 'withdraw' THEN trellis.owner_may_write('withdraw', requester_id)
      WHEN 'review' THEN trellis.has_block('assigned-reviewer') AND trellis.has_scope('review')
                         AND assigned_reviewer = trellis.claim_sub()
      ELSE false
    END
  )
  WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations (ctx as in form-intake) ────────────────────────────────────────────
CREATE FUNCTION trellis.gw_approval_queue_create(ctx jsonb, p_id uuid, p_reviewer text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  INSERT INTO trellis.approval_queue_requests (id, app_id, requester_id, assigned_reviewer, payload,
                                               labels, created_at, updated_at)
  VALUES (p_id, ctx->>'app_id', ctx->>'sub', p_reviewer, p_payload,
          coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}'),
          (ctx->>'at')::timestamptz, (ctx->>'at')::timestamptz);
  PERFORM trellis.audit_write(ctx, 'request.create', 'request', p_id::text, 'allowed', NULL);
END $$;

-- p_role: NULL (every request the caller may read), 'requester' (theirs) or 'reviewer'
-- (assigned to them); p_state: one state or NULL.
CREATE FUNCTION trellis.gw_approval_queue_list(ctx jsonb, p_role text, p_state text, p_before uuid,
                                               p_limit integer)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.approval_queue_requests r
    WHERE r.app_id = ctx->>'app_id'
      AND (p_role IS NULL OR (p_role = 'requester' AND r.requester_id = ctx->>'sub')
           OR (p_role = 'reviewer' AND r.assigned_reviewer = ctx->>'sub'))
      AND (p_state IS NULL OR r.state = p_state::trellis.approval_queue_state)
      AND (p_before IS NULL OR r.id < p_before)
    ORDER BY r.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_approval_queue_get(ctx jsonb, p_id uuid)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.approval_queue_requests r
    WHERE r.id = p_id AND r.app_id = ctx->>'app_id';
END $$;

-- One move, only from the state the caller saw: of concurrent moves on one request exactly
-- one matches (the others wait for its row lock, then find another state and change nothing).
-- The audit event carries the diff. Returns the moved row, or nothing.
CREATE FUNCTION trellis.gw_approval_queue_move(ctx jsonb, p_id uuid, p_from text, p_to text,
                                               p_action text)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', p_action, true);
  RETURN QUERY UPDATE trellis.approval_queue_requests r
     SET state = p_to::trellis.approval_queue_state, updated_at = (ctx->>'at')::timestamptz
   WHERE r.id = p_id AND r.app_id = ctx->>'app_id'
     AND r.state = p_from::trellis.approval_queue_state
  RETURNING r.*;
  IF FOUND THEN
    PERFORM trellis.audit_write(
      ctx || jsonb_build_object('diff', jsonb_build_object('state',
        jsonb_build_object('from', p_from, 'to', p_to))),
      'request.transition', 'request', p_id::text, 'allowed', NULL);
  END IF;
END $$;

ALTER FUNCTION trellis.gw_approval_queue_create(jsonb, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_list(jsonb, text, text, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_get(jsonb, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_move(jsonb, uuid, text, text, text) OWNER TO trellis_gateway;
