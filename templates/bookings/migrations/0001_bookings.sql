-- bookings: reservations of named resources over time ranges. Two live bookings of one resource
-- of one app never overlap: an exclusion constraint says so, so no code path (two requests at
-- once, two servers, a bug) can double-book. A booking is never edited: it can only be cancelled,
-- which frees its time.
-- btree_gist gives GiST the `=` on text the exclusion constraint combines with `&&` on ranges
-- (a trusted extension from PostgreSQL 13: a database owner may create it; PGlite loads it).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE trellis.bookings (
  id uuid PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  owner_id text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 200),
  resource text NOT NULL CHECK (resource ~ '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$'),
  -- [starts_at, ends_at): one booking may end when the next begins.
  period tstzrange NOT NULL CHECK (
    NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)
    AND lower_inc(period) AND NOT upper_inc(period)
    AND upper(period) - lower(period) <= interval '31 days'),
  labels text[] NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 8),
  created_at timestamptz NOT NULL,
  cancelled boolean NOT NULL DEFAULT false,
  CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (app_id WITH =, resource WITH =, period WITH &&) WHERE (NOT cancelled)
);
CREATE INDEX bookings_by_owner ON trellis.bookings (app_id, owner_id, id DESC) WHERE NOT cancelled;

-- Only the one-way cancelled flag may change; the rest is fixed at creation.
CREATE FUNCTION trellis.bookings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.app_id, NEW.owner_id, NEW.resource, NEW.period, NEW.labels, NEW.created_at)
       IS DISTINCT FROM (OLD.id, OLD.app_id, OLD.owner_id, OLD.resource, OLD.period, OLD.labels, OLD.created_at)
     OR (OLD.cancelled AND NOT NEW.cancelled) THEN
    RAISE EXCEPTION 'trellis: only the cancellation of a booking may change'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER bookings_guard BEFORE UPDATE ON trellis.bookings
  FOR EACH ROW EXECUTE FUNCTION trellis.bookings_guard();

REVOKE ALL ON trellis.bookings FROM PUBLIC;
GRANT SELECT, INSERT ON trellis.bookings TO trellis_gateway;
GRANT UPDATE (cancelled) ON trellis.bookings TO trellis_gateway;

ALTER TABLE trellis.bookings ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.bookings FORCE ROW LEVEL SECURITY;

CREATE POLICY bookings_read ON trellis.bookings FOR SELECT TO trellis_gateway
  USING (
    app_id = (SELECT trellis.claim_app())
    AND ((SELECT trellis.reads_all())
      OR ((SELECT trellis.reads_own()) AND owner_id = (SELECT trellis.claim_sub())))
    AND ((SELECT trellis.labels_unrestricted())
      OR ((SELECT cardinality(trellis.claim_labels()) > 0)
        AND labels @> (SELECT trellis.claim_labels())))
  );
CREATE POLICY bookings_create ON trellis.bookings FOR INSERT TO trellis_gateway
  WITH CHECK (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('create', owner_id)
    AND trellis.no_write_forbid(labels)
  );
-- The only change a booking takes is its cancellation, so every UPDATE is the cancel action.
CREATE POLICY bookings_cancel ON trellis.bookings FOR UPDATE TO trellis_gateway
  USING (
    app_id = trellis.claim_app()
    AND trellis.owner_may_write('cancel', owner_id)
    AND trellis.no_write_forbid(labels)
  )
  WITH CHECK (app_id = trellis.claim_app());

-- ── gateway operations (ctx as in form-intake) ────────────────────────────────────────────
-- An overlap is refused by bookings_no_overlap (SQLSTATE 23P01, which the gateway answers as
-- booking_conflict). Bookings of one resource take turns first (a transaction-level advisory
-- lock on app and resource): two inserts that check the constraint at the same instant can each
-- find the other's row and wait for it, a deadlock PostgreSQL breaks only after deadlock_timeout
-- by aborting one with 40P01 (see execIndexing.c), where the caller should get 23P01 at once.
CREATE FUNCTION trellis.gw_bookings_create(ctx jsonb, p_id uuid, p_resource text,
                                           p_starts timestamptz, p_ends timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx),
          pg_advisory_xact_lock(hashtext('trellis.bookings:' || (ctx->>'app_id')), hashtext(p_resource));
  INSERT INTO trellis.bookings (id, app_id, owner_id, resource, period, labels, created_at)
  VALUES (p_id, ctx->>'app_id', ctx->>'sub', p_resource, tstzrange(p_starts, p_ends, '[)'),
          coalesce(string_to_array(nullif(ctx->>'labels', ''), ' '), '{}'),
          (ctx->>'at')::timestamptz);
  PERFORM trellis.audit_write(ctx, 'booking.create', 'booking', p_id::text, 'allowed', NULL);
END $$;

-- Live bookings, newest first; p_from/p_to (either may be NULL: unbounded) keep those whose
-- time overlaps [p_from, p_to).
CREATE FUNCTION trellis.gw_bookings_list(ctx jsonb, p_resource text, p_from timestamptz,
                                         p_to timestamptz, p_before uuid, p_limit integer)
RETURNS SETOF trellis.bookings LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.bookings b
    WHERE b.app_id = ctx->>'app_id' AND NOT b.cancelled
      AND (p_resource IS NULL OR b.resource = p_resource)
      AND ((p_from IS NULL AND p_to IS NULL) OR b.period && tstzrange(p_from, p_to, '[)'))
      AND (p_before IS NULL OR b.id < p_before)
    ORDER BY b.id DESC LIMIT p_limit;
END $$;

CREATE FUNCTION trellis.gw_bookings_get(ctx jsonb, p_id uuid)
RETURNS SETOF trellis.bookings LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  RETURN QUERY SELECT * FROM trellis.bookings b
    WHERE b.id = p_id AND b.app_id = ctx->>'app_id' AND NOT b.cancelled;
END $$;

-- A cancellation: soft, one-way, and the booking's time is free again at once (the exclusion
-- constraint only looks at live bookings).
CREATE FUNCTION trellis.gw_bookings_cancel(ctx jsonb, p_id uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM trellis.set_claims(ctx);
  UPDATE trellis.bookings b SET cancelled = true
    WHERE b.id = p_id AND b.app_id = ctx->>'app_id' AND NOT b.cancelled;
  IF FOUND THEN
    PERFORM trellis.audit_write(ctx, 'booking.cancel', 'booking', p_id::text, 'allowed', NULL);
    RETURN true;
  END IF;
  RETURN false;
END $$;

ALTER FUNCTION trellis.gw_bookings_create(jsonb, uuid, text, timestamptz, timestamptz) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_list(jsonb, text, timestamptz, timestamptz, uuid, integer) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_get(jsonb, uuid) OWNER TO trellis_gateway;
ALTER FUNCTION trellis.gw_bookings_cancel(jsonb, uuid) OWNER TO trellis_gateway;
