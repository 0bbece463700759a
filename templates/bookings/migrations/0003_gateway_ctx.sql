-- The gateway functions take the request context as trellis.gw_ctx (core migration
-- 0014_gateway_ctx.sql): fields read without a jsonb parse and a function call each, and the
-- scope and block claims stored between spaces for trellis.has_scope / has_block. Same
-- statements, row-level security and audit events as before.
DROP FUNCTION trellis.gw_bookings_create(jsonb, uuid, text, timestamptz, timestamptz);
DROP FUNCTION trellis.gw_bookings_list(jsonb, text, timestamptz, timestamptz, uuid, integer);
DROP FUNCTION trellis.gw_bookings_get(jsonb, uuid);
DROP FUNCTION trellis.gw_bookings_cancel(jsonb, uuid);

CREATE FUNCTION trellis.gw_bookings_create(ctx trellis.gw_ctx, p_id uuid, p_resource text, p_starts timestamptz, p_ends timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx),
          pg_advisory_xact_lock(hashtext('trellis.bookings:' || (ctx.app_id)), hashtext(p_resource));
  INSERT INTO trellis.bookings (id, app_id, owner_id, resource, period, labels, created_at)
  VALUES (p_id, ctx.app_id, ctx.sub, p_resource, tstzrange(p_starts, p_ends, '[)'),
          coalesce(string_to_array(nullif(ctx.labels, ''), ' '), '{}'),
          ctx.at);
  PERFORM trellis.audit_write(ctx, 'booking.create', 'booking', p_id::text, 'allowed', NULL);
END $$;

CREATE FUNCTION trellis.gw_bookings_list(ctx trellis.gw_ctx, p_resource text, p_from timestamptz, p_to timestamptz, p_before uuid, p_limit integer)
RETURNS SETOF trellis.bookings LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.bookings b
    WHERE b.app_id = ctx.app_id AND NOT b.cancelled
      AND (p_resource IS NULL OR b.resource = p_resource)
      AND ((p_from IS NULL AND p_to IS NULL) OR b.period && tstzrange(p_from, p_to, '[)'))
      AND (p_before IS NULL OR b.id < p_before)
    ORDER BY b.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_bookings_get(ctx trellis.gw_ctx, p_id uuid)
RETURNS SETOF trellis.bookings LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.bookings b
    WHERE b.id = p_id AND b.app_id = ctx.app_id AND NOT b.cancelled;
END $$;

CREATE FUNCTION trellis.gw_bookings_cancel(ctx trellis.gw_ctx, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  UPDATE trellis.bookings b SET cancelled = true
    WHERE b.id = p_id AND b.app_id = ctx.app_id AND NOT b.cancelled;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'booking.cancel', 'booking', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_bookings_create(trellis.gw_ctx, uuid, text, timestamptz, timestamptz) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_list(trellis.gw_ctx, text, timestamptz, timestamptz, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_get(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_cancel(trellis.gw_ctx, uuid) OWNER TO trellis_gateway;
