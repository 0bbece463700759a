-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_directory_create(jsonb, uuid, text, jsonb);
DROP FUNCTION trellis.gw_directory_list(jsonb, text, jsonb, uuid, integer);
DROP FUNCTION trellis.gw_directory_get(jsonb, uuid);
DROP FUNCTION trellis.gw_directory_update(jsonb, uuid, jsonb);
DROP FUNCTION trellis.gw_directory_delete(jsonb, uuid);

CREATE FUNCTION trellis.gw_directory_create(ctx trellis.gw_ctx, p_id uuid, p_kind text, p_attrs jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  INSERT INTO trellis.directory_items (id, app_id, owner_id, kind, attrs, labels, created_at, updated_at)
  VALUES (p_id, ctx.app_id, ctx.sub, p_kind, p_attrs,
          coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}'),
          ctx.at, ctx.at);
  PERFORM trellis.audit_write(ctx, 'item.create', 'item', p_id::text, 'allowed', NULL);
END $$;

CREATE FUNCTION trellis.gw_directory_list(ctx trellis.gw_ctx, p_kind text, p_attrs jsonb, p_before uuid, p_limit integer)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.directory_items i
    WHERE i.app_id = ctx.app_id AND NOT i.deleted
      AND (p_kind IS NULL OR i.kind = p_kind)
      AND (p_attrs IS NULL OR i.attrs @> p_attrs)
      AND (p_before IS NULL OR i.id < p_before)
    ORDER BY i.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_directory_get(ctx trellis.gw_ctx, p_id uuid)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.directory_items i
    WHERE i.id = p_id AND i.app_id = ctx.app_id AND NOT i.deleted;
END $$;

CREATE FUNCTION trellis.gw_directory_update(ctx trellis.gw_ctx, p_id uuid, p_attrs jsonb)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', 'update', true);
  RETURN QUERY UPDATE trellis.directory_items i SET attrs = p_attrs, updated_at = ctx.at
    WHERE i.id = p_id AND i.app_id = ctx.app_id AND NOT i.deleted RETURNING i.*;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'item.update', 'item', p_id::text, 'allowed', NULL);
  END IF;
END $$;

CREATE FUNCTION trellis.gw_directory_delete(ctx trellis.gw_ctx, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', 'delete', true);
  UPDATE trellis.directory_items i SET deleted = true, updated_at = ctx.at
    WHERE i.id = p_id AND i.app_id = ctx.app_id AND NOT i.deleted;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'item.delete', 'item', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_directory_create(trellis.gw_ctx, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_list(trellis.gw_ctx, text, jsonb, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_get(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_update(trellis.gw_ctx, uuid, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_delete(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
