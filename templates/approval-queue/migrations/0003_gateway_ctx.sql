-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_approval_queue_create(jsonb, uuid, text, jsonb);
DROP FUNCTION trellis.gw_approval_queue_list(jsonb, text, text, uuid, integer);
DROP FUNCTION trellis.gw_approval_queue_get(jsonb, uuid);
DROP FUNCTION trellis.gw_approval_queue_move(jsonb, uuid, text, text, text);

CREATE FUNCTION trellis.gw_approval_queue_create(ctx trellis.gw_ctx, p_id uuid, p_reviewer text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  INSERT INTO trellis.approval_queue_requests (id, app_id, requester_id, assigned_reviewer, payload,
                                               labels, created_at, updated_at)
  VALUES (p_id, ctx.app_id, ctx.sub, p_reviewer, p_payload,
          coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}'),
          ctx.at, ctx.at);
  PERFORM trellis.audit_write(ctx, 'request.create', 'request', p_id::text, 'allowed', NULL);
END $$;

CREATE FUNCTION trellis.gw_approval_queue_list(ctx trellis.gw_ctx, p_role text, p_state text, p_before uuid, p_limit integer)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.approval_queue_requests r
    WHERE r.app_id = ctx.app_id
      AND (p_role IS NULL OR (p_role = 'requester' AND r.requester_id = ctx.sub)
           OR (p_role = 'reviewer' AND r.assigned_reviewer = ctx.sub))
      AND (p_state IS NULL OR r.state = p_state::trellis.approval_queue_state)
      AND (p_before IS NULL OR r.id < p_before)
    ORDER BY r.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_approval_queue_get(ctx trellis.gw_ctx, p_id uuid)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.approval_queue_requests r
    WHERE r.id = p_id AND r.app_id = ctx.app_id;
END $$;

CREATE FUNCTION trellis.gw_approval_queue_move(ctx trellis.gw_ctx, p_id uuid, p_from text, p_to text, p_action text)
RETURNS SETOF trellis.approval_queue_requests LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', p_action, true);
  RETURN QUERY UPDATE trellis.approval_queue_requests r
     SET state = p_to::trellis.approval_queue_state, updated_at = ctx.at
   WHERE r.id = p_id AND r.app_id = ctx.app_id
     AND r.state = p_from::trellis.approval_queue_state
  RETURNING r.*;
  IF FOUND THEN
    ctx.diff := jsonb_build_object('state', jsonb_build_object('from', p_from, 'to', p_to));
    PERFORM trellis.audit_write(ctx, 'request.transition', 'request', p_id::text, 'allowed', NULL);
  END IF;
END $$;

ALTER FUNCTION trellis.gw_approval_queue_create(trellis.gw_ctx, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_list(trellis.gw_ctx, text, text, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_get(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_approval_queue_move(trellis.gw_ctx, uuid, text, text, text) OWNER TO trellis_gateway;
