-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_ttl_cache_put(jsonb, text, jsonb, timestamptz, integer);
DROP FUNCTION trellis.gw_ttl_cache_get(jsonb, text);

CREATE FUNCTION trellis.gw_ttl_cache_put(ctx trellis.gw_ctx, p_key text, p_value jsonb, p_expires timestamptz, p_quota integer)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_labels text[] := coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}');
  v_at timestamptz := ctx.at;
  v_created boolean;
BEGIN
  PERFORM set_config('trellis.app_id', coalesce(ctx.app_id, ''), true),
          set_config('trellis.sub', coalesce(ctx.sub, ''), true),
          set_config('trellis.scopes', ' ' || coalesce(ctx.scopes, '') || ' ', true),
          set_config('trellis.labels', coalesce(ctx.labels, ''), true),
          set_config('trellis.env', coalesce(ctx.env, ''), true),
          set_config('trellis.app_env', coalesce(ctx.app_env, ''), true),
          set_config('trellis.blocks', ' ' || coalesce(ctx.blocks, '') || ' ', true);
  UPDATE trellis.ttl_cache_entries e
     SET owner_id = ctx.sub, value = p_value, labels = v_labels, expires_at = p_expires,
         updated_at = v_at
   WHERE e.app_id = ctx.app_id AND e.key = p_key;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'allowed', NULL);
    RETURN 'replaced';
  END IF;
  -- A new key (or one the caller cannot see, which the insert below refuses): new keys of one
  -- app take turns, so two cannot both take the last place.
  PERFORM pg_advisory_xact_lock(hashtext('trellis.ttl_cache:' || (ctx.app_id)));
  IF trellis.ttl_cache_purge_and_count(ctx.app_id, v_at, 1000) >= p_quota THEN
    PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'denied', 'quota_exceeded');
    RETURN 'quota';
  END IF;
  INSERT INTO trellis.ttl_cache_entries AS e (app_id, key, owner_id, value, labels, expires_at, updated_at)
  VALUES (ctx.app_id, p_key, ctx.sub, p_value, v_labels, p_expires, v_at)
  ON CONFLICT (app_id, key) DO UPDATE
    SET owner_id = excluded.owner_id, value = excluded.value, labels = excluded.labels,
        expires_at = excluded.expires_at, updated_at = excluded.updated_at
  RETURNING (xmax = 0) INTO v_created;
  PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'allowed', NULL);
  RETURN CASE WHEN v_created THEN 'created' ELSE 'replaced' END;
END $$;

CREATE FUNCTION trellis.gw_ttl_cache_get(ctx trellis.gw_ctx, p_key text)
RETURNS SETOF trellis.ttl_cache_entries LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Expired is gone: the same answer as absent or hidden.
  RETURN QUERY SELECT * FROM trellis.ttl_cache_entries e
    WHERE e.app_id = ctx.app_id AND e.key = p_key AND e.expires_at > ctx.at;
END $$;

ALTER FUNCTION trellis.gw_ttl_cache_put(trellis.gw_ctx, text, jsonb, timestamptz, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_ttl_cache_get(trellis.gw_ctx, text) OWNER TO trellis_gateway;
