-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_event_log_append(jsonb, uuid, text, jsonb);
DROP FUNCTION trellis.gw_event_log_list(jsonb, bigint, integer);

CREATE FUNCTION trellis.gw_event_log_append(ctx trellis.gw_ctx, p_id uuid, p_type text, p_data jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_seq bigint;
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Take the next number; the head row's lock makes concurrent appends of one app wait here,
  -- and a refused append rolls the number back with it: no gaps, no duplicates.
  INSERT INTO trellis.event_log_heads AS h (app_id, last_seq) VALUES (ctx.app_id, 1)
    ON CONFLICT (app_id) DO UPDATE SET last_seq = h.last_seq + 1
    RETURNING h.last_seq INTO v_seq;
  INSERT INTO trellis.event_log_events (app_id, seq, id, type, author_id, data, labels, created_at)
  VALUES (ctx.app_id, v_seq, p_id, p_type, ctx.sub, p_data,
          coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}'), ctx.at);
  PERFORM trellis.audit_write(ctx, 'event.append', 'event', p_id::text, 'allowed', NULL);
  RETURN v_seq;
END $$;

CREATE FUNCTION trellis.gw_event_log_list(ctx trellis.gw_ctx, p_after bigint, p_limit integer)
RETURNS SETOF trellis.event_log_events LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- RLS decides; the branches only let the planner use the right index.
  IF trellis.reads_all() THEN
    RETURN QUERY SELECT * FROM trellis.event_log_events e
      WHERE e.app_id = ctx.app_id AND e.seq > p_after ORDER BY e.seq LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM trellis.event_log_events e
      WHERE e.app_id = ctx.app_id AND e.author_id = ctx.sub AND e.seq > p_after
      ORDER BY e.seq LIMIT p_limit;
  END IF;
END $$;

ALTER FUNCTION trellis.gw_event_log_append(trellis.gw_ctx, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_event_log_list(trellis.gw_ctx, bigint, integer) OWNER TO trellis_gateway;
