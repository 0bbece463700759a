-- directory: the seed's single-table inventory. Items are updated (attrs) and soft-deleted.
CREATE TABLE trellis.directory_items (
  id uuid PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  owner_id text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 200),
  kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]{0,63}$'),
  attrs jsonb NOT NULL CHECK (jsonb_typeof(attrs) = 'object'),
  labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false
);
CREATE INDEX directory_by_owner ON trellis.directory_items (app_id, owner_id, id DESC) WHERE NOT deleted;
CREATE INDEX directory_by_kind ON trellis.directory_items (app_id, kind, id DESC) WHERE NOT deleted;

-- Only attrs, updated_at and the one-way deleted flag may change; the rest is fixed at creation.
CREATE FUNCTION trellis.directory_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.app_id, NEW.owner_id, NEW.kind, NEW.labels, NEW.created_at)
       IS DISTINCT FROM (OLD.id, OLD.app_id, OLD.owner_id, OLD.kind, OLD.labels, OLD.created_at)
     OR (OLD.deleted AND NOT NEW.deleted) THEN
    RAISE EXCEPTION 'trellis: only attrs and deletion of a directory item may change'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER directory_guard BEFORE UPDATE ON trellis.directory_items
  FOR EACH ROW EXECUTE FUNCTION trellis.directory_guard();

REVOKE ALL ON trellis.directory_items FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.directory_items TO trellis_gateway;
GRANT UPDATE (attrs, updated_at, deleted) ON trellis.directory_items TO trellis_gateway;

ALTER TABLE trellis.directory_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.directory_items FORCE ROW LEVEL SECURITY;

CREATE POLICY items_read ON trellis.directory_items FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND owner_id = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );
CREATE POLICY items_create ON trellis.directory_items FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('create', owner_id)
    AND trellis.no_write_forbid(labels)
  );
-- An UPDATE is either an attrs change ("update") or a soft delete ("delete"); the gateway
-- function names which in the claim trellis.write_action, so each needs its own scope.
CREATE POLICY items_change ON trellis.directory_items FOR UPDATE TO trellis_gateway
  USING (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write(nullif(current_setting('trellis.write_action', true), ''), owner_id)
    AND trellis.no_write_forbid(labels)
  )
  WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations (ctx as in form-intake) ────────────────────────────────────────────
CREATE FUNCTION trellis.gw_directory_create(ctx jsonb, p_id uuid, p_kind text, p_attrs jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  INSERT INTO trellis.directory_items (id, app_id, owner_id, kind, attrs, labels, created_at, updated_at)
  VALUES (p_id, ctx->>'app_id', ctx->>'sub', p_kind, p_attrs,
          coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}'),
          (ctx->>'at')::timestamptz, (ctx->>'at')::timestamptz);
  PERFORM trellis.audit_write(ctx, 'item.create', 'item', p_id::text, 'allowed', NULL);
END $$;

CREATE FUNCTION trellis.gw_directory_list(ctx jsonb, p_kind text, p_attrs jsonb, p_before uuid,
                                          p_limit integer)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.directory_items i
    WHERE i.app_id = ctx->>'app_id' AND NOT i.deleted
      AND (p_kind IS NULL OR i.kind = p_kind)
      AND (p_attrs IS NULL OR i.attrs @> p_attrs)
      AND (p_before IS NULL OR i.id < p_before)
    ORDER BY i.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_directory_get(ctx jsonb, p_id uuid)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.directory_items i
    WHERE i.id = p_id AND i.app_id = ctx->>'app_id' AND NOT i.deleted;
END $$;

-- An attrs change: the merged attrs (validated by the gateway) replace the old ones.
CREATE FUNCTION trellis.gw_directory_update(ctx jsonb, p_id uuid, p_attrs jsonb)
RETURNS SETOF trellis.directory_items LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', 'update', true);
  RETURN QUERY UPDATE trellis.directory_items i SET attrs = p_attrs, updated_at = (ctx->>'at')::timestamptz
    WHERE i.id = p_id AND i.app_id = ctx->>'app_id' AND NOT i.deleted RETURNING i.*;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'item.update', 'item', p_id::text, 'allowed', NULL);
  END IF;
END $$;

CREATE FUNCTION trellis.gw_directory_delete(ctx jsonb, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx), set_config('trellis.write_action', 'delete', true);
  UPDATE trellis.directory_items i SET deleted = true, updated_at = (ctx->>'at')::timestamptz
    WHERE i.id = p_id AND i.app_id = ctx->>'app_id' AND NOT i.deleted;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'item.delete', 'item', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_directory_create(jsonb, uuid, text, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_list(jsonb, text, jsonb, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_get(jsonb, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_update(jsonb, uuid, jsonb) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_directory_delete(jsonb, uuid) OWNER TO trellis_gateway;
