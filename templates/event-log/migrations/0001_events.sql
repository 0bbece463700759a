-- event-log: an immutable, per-app ordered event store. Append-only for every role; each app's
-- events are numbered 1, 2, 3, … without gaps (the head row of the app serializes appends).
CREATE TABLE trellis.event_log_heads (
  app_id text PRIMARY KEY REFERENCES trellis.apps (id),
  last_seq bigint NOT NULL CHECK (last_seq > 0)
);

CREATE TABLE trellis.event_log_events (
  app_id text NOT NULL REFERENCES trellis.apps (id),
  seq bigint NOT NULL CHECK (seq > 0),
  id uuid NOT NULL UNIQUE,
  type text NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.-]{0,63}$'),
  author_id text NOT NULL CHECK (length(author_id) BETWEEN 1 AND 200),
  data jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
  labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  created_at timestamptz NOT NULL,
  PRIMARY KEY (app_id, seq)
);
CREATE INDEX event_log_by_author ON trellis.event_log_events (app_id, author_id, seq);

-- Immutable: no UPDATE, DELETE or TRUNCATE, for any role (triggers fire for the owner too).
CREATE TRIGGER event_log_immutable BEFORE UPDATE OR DELETE ON trellis.event_log_events
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON trellis.event_log_events
  FOR EACH STATEMENT EXECUTE FUNCTION trellis.refuse_change();

REVOKE ALL ON trellis.event_log_events, trellis.event_log_heads FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.event_log_events TO trellis_gateway;
GRANT SELECT, INSERT, UPDATE ON trellis.event_log_heads TO trellis_gateway;

ALTER TABLE trellis.event_log_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.event_log_events FORCE ROW LEVEL SECURITY;
ALTER TABLE trellis.event_log_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.event_log_heads FORCE ROW LEVEL SECURITY;

-- read: the policy blocks, as in form-intake (no reviewer here).
CREATE POLICY events_read ON trellis.event_log_events FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND author_id = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );
-- append: owner-write for "append", and no forbid block stops it.
CREATE POLICY events_append ON trellis.event_log_events FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('append', author_id)
    AND trellis.no_write_forbid(labels)
  );
-- The head is the app's counter: the caller's app only (the events policy guards the append).
CREATE POLICY heads_own_app ON trellis.event_log_heads FOR ALL TO trellis_gateway
  USING (app_id = trellis.claim_app()) WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations ────────────────────────────────────────────────────────────────────
-- ctx as in form-intake: {app_id, sub, scopes, labels, env, app_env, blocks, policy_ids,
-- token_id, event_id, request_id, at}.
CREATE FUNCTION trellis.gw_event_log_append(ctx jsonb, p_id uuid, p_type text, p_data jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_seq bigint;
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Take the next number; the head row's lock makes concurrent appends of one app wait here,
  -- and a refused append rolls the number back with it: no gaps, no duplicates.
  INSERT INTO trellis.event_log_heads AS h (app_id, last_seq) VALUES (ctx->>'app_id', 1)
    ON CONFLICT (app_id) DO UPDATE SET last_seq = h.last_seq + 1
    RETURNING h.last_seq INTO v_seq;
  INSERT INTO trellis.event_log_events (app_id, seq, id, type, author_id, data, labels, created_at)
  VALUES (ctx->>'app_id', v_seq, p_id, p_type, ctx->>'sub', p_data,
          coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}'), (ctx->>'at')::timestamptz);
  PERFORM trellis.audit_write(ctx, 'event.append', 'event', p_id::text, 'allowed', NULL);
  RETURN v_seq;
END $$;

CREATE FUNCTION trellis.gw_event_log_list(ctx jsonb, p_after bigint, p_limit integer)
RETURNS SETOF trellis.event_log_events LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- RLS decides; the branches only let the planner use the right index.
  IF trellis.reads_all() THEN
    RETURN QUERY SELECT * FROM trellis.event_log_events e
      WHERE e.app_id = ctx->>'app_id' AND e.seq > p_after ORDER BY e.seq LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM trellis.event_log_events e
      WHERE e.app_id = ctx->>'app_id' AND e.author_id = ctx->>'sub' AND e.seq > p_after
      ORDER BY e.seq LIMIT p_limit;
  END IF;
END $$;

ALTER FUNCTION trellis.gw_event_log_append(jsonb, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_event_log_list(jsonb, bigint, integer) OWNER TO trellis_gateway;
