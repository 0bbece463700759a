-- ttl-cache: key/value entries with a lifetime. Expired entries are invisible at once (every
-- read filters on expires_at) and purged when an app reaches its quota.
CREATE TABLE trellis.ttl_cache_entries (
  app_id text NOT NULL REFERENCES trellis.apps (id),
  key text NOT NULL CHECK (key ~ '^[A-Za-z0-9_.:-]{1,200}$'),
  owner_id text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 200),
  value jsonb NOT NULL CHECK (octet_length(value::text) <= 65536),
  labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  expires_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (app_id, key)
);
CREATE INDEX ttl_cache_expiry ON trellis.ttl_cache_entries (app_id, expires_at);

REVOKE ALL ON trellis.ttl_cache_entries FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.ttl_cache_entries TO trellis_gateway;
GRANT UPDATE (owner_id, value, labels, expires_at, updated_at) ON trellis.ttl_cache_entries TO trellis_gateway;

ALTER TABLE trellis.ttl_cache_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.ttl_cache_entries FORCE ROW LEVEL SECURITY;

CREATE POLICY entries_read ON trellis.ttl_cache_entries FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND owner_id = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );
CREATE POLICY entries_put ON trellis.ttl_cache_entries FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('put', owner_id)
    AND trellis.no_write_forbid(labels)
  );
-- Replacing an entry: the caller must be allowed to write the entry as it is (its owner, under
-- owner-write) and as it will be.
CREATE POLICY entries_replace ON trellis.ttl_cache_entries FOR UPDATE TO trellis_gateway
  USING (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('put', owner_id)
    AND trellis.no_write_forbid(labels)
  )
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('put', owner_id)
    AND trellis.no_write_forbid(labels)
  );

-- The quota and the purge look at every entry of the app, whoever owns it, so they run as the
-- table's owner, in two narrow functions that return a count and nothing else.
CREATE POLICY entries_owner_count ON trellis.ttl_cache_entries FOR SELECT TO CURRENT_USER USING (true);
-- (The purge function's own WHERE decides what is expired, by the request's time.)
CREATE POLICY entries_owner_purge ON trellis.ttl_cache_entries FOR DELETE TO CURRENT_USER USING (true);

-- Deletes the app's expired entries (at most p_max) and returns how many live ones remain.
CREATE FUNCTION trellis.ttl_cache_purge_and_count(p_app text, p_at timestamptz, p_max integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM trellis.ttl_cache_entries e
   WHERE (e.app_id, e.key) IN (SELECT x.app_id, x.key FROM trellis.ttl_cache_entries x
                                WHERE x.app_id = p_app AND x.expires_at <= p_at LIMIT p_max);
  SELECT count(*) INTO n FROM trellis.ttl_cache_entries e WHERE e.app_id = p_app AND e.expires_at > p_at;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION trellis.ttl_cache_purge_and_count(text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trellis.ttl_cache_purge_and_count(text, timestamptz, integer) TO trellis_gateway;

-- ── gateway operations (ctx as in form-intake) ────────────────────────────────────────────
-- Put: replace the caller's entry if there is one (no lock, no quota: the common case), else
-- insert it, unless the app is full: a new key in a full app is refused ('quota') after
-- purging expired entries. Returns 'created', 'replaced' or 'quota'.
CREATE FUNCTION trellis.gw_ttl_cache_put(ctx jsonb, p_key text, p_value jsonb, p_expires timestamptz,
                                         p_quota integer)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_labels text[] := coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}');
  v_at timestamptz := (ctx->>'at')::timestamptz;
  v_created boolean;
BEGIN
  PERFORM trellis.set_claims(ctx);
  UPDATE trellis.ttl_cache_entries e
     SET owner_id = ctx->>'sub', value = p_value, labels = v_labels, expires_at = p_expires,
         updated_at = v_at
   WHERE e.app_id = ctx->>'app_id' AND e.key = p_key;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'allowed', NULL);
    RETURN 'replaced';
  END IF;
  -- A new key (or one the caller cannot see, which the insert below refuses): new keys of one
  -- app take turns, so two cannot both take the last place.
  PERFORM pg_advisory_xact_lock(hashtext('trellis.ttl_cache:' || (ctx->>'app_id')));
  IF trellis.ttl_cache_purge_and_count(ctx->>'app_id', v_at, 1000) >= p_quota THEN
    PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'denied', 'quota_exceeded');
    RETURN 'quota';
  END IF;
  INSERT INTO trellis.ttl_cache_entries AS e (app_id, key, owner_id, value, labels, expires_at, updated_at)
  VALUES (ctx->>'app_id', p_key, ctx->>'sub', p_value, v_labels, p_expires, v_at)
  ON CONFLICT (app_id, key) DO UPDATE
    SET owner_id = excluded.owner_id, value = excluded.value, labels = excluded.labels,
        expires_at = excluded.expires_at, updated_at = excluded.updated_at
  RETURNING (xmax = 0) INTO v_created;
  PERFORM trellis.audit_write(ctx, 'entry.put', 'entry', p_key, 'allowed', NULL);
  RETURN CASE WHEN v_created THEN 'created' ELSE 'replaced' END;
END $$;

CREATE FUNCTION trellis.gw_ttl_cache_get(ctx jsonb, p_key text)
RETURNS SETOF trellis.ttl_cache_entries LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  -- Expired is gone: the same answer as absent or hidden.
  RETURN QUERY SELECT * FROM trellis.ttl_cache_entries e
    WHERE e.app_id = ctx->>'app_id' AND e.key = p_key AND e.expires_at > (ctx->>'at')::timestamptz;
END $$;

ALTER FUNCTION trellis.gw_ttl_cache_put(jsonb, text, jsonb, timestamptz, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_ttl_cache_get(jsonb, text) OWNER TO trellis_gateway;
