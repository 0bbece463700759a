-- Trellis core schema: roles, claims helpers, control-plane tables, the append-only audit log.
-- Runs as the owner (the DATABASE_URL user, or PGlite's default superuser).

-- trellis_gateway is the only role the data path runs as: it cannot log in, owns no tables, is
-- not a superuser and cannot bypass row-level security. Roles are cluster-wide, so creation
-- tolerates a concurrent creator (several databases migrating at once on one server).
DO $$
BEGIN
  CREATE ROLE trellis_gateway NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- A non-superuser owner must be a member of trellis_gateway to give it the gateway functions.
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT trellis_gateway TO %I', current_user);
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

REVOKE ALL ON SCHEMA trellis FROM PUBLIC;
GRANT USAGE ON SCHEMA trellis TO trellis_gateway;

-- Claims live in transaction-local settings (set_config(..., true)), set by the gateway
-- functions of each template; row-level security policies read them through these helpers.
-- current_setting(x, true) returns '' once a setting has been used in the session: nullif.
CREATE FUNCTION trellis.claim_app() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('trellis.app_id', true), '') $$;
CREATE FUNCTION trellis.claim_sub() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('trellis.sub', true), '') $$;
CREATE FUNCTION trellis.has_scope(scope text) RETURNS boolean LANGUAGE sql STABLE
  AS $$ SELECT coalesce(scope = ANY (string_to_array(nullif(current_setting('trellis.scopes', true), ''), ' ')), false) $$;


-- ── control plane (never granted to the gateway) ──────────────────────────────────────────
CREATE TABLE trellis.admin_credentials (
  id text PRIMARY KEY,
  token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL,
  revoked_at timestamptz
);

CREATE TABLE trellis.signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL CHECK (alg = 'EdDSA'),
  public_jwk jsonb NOT NULL,
  private_jwk_sealed text NOT NULL, -- AES-256-GCM under the master key, AAD = kid
  created_at timestamptz NOT NULL,
  retired_at timestamptz
);

CREATE TABLE trellis.apps (
  id text PRIMARY KEY,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  template_id text NOT NULL,
  template_version integer NOT NULL,
  owners text[] NOT NULL CHECK (cardinality(owners) BETWEEN 1 AND 20),
  payload_schema jsonb NOT NULL,
  retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'retired')),
  created_at timestamptz NOT NULL,
  created_by text NOT NULL
);

CREATE TABLE trellis.tokens (
  id text PRIMARY KEY,
  app_id text NOT NULL REFERENCES trellis.apps (id),
  subject text NOT NULL,
  scopes text[] NOT NULL,
  kid text NOT NULL REFERENCES trellis.signing_keys (kid),
  issued_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  issued_by text NOT NULL,
  CHECK (expires_at > issued_at) -- no permanent tokens
);
CREATE INDEX tokens_app ON trellis.tokens (app_id, issued_at);

ALTER TABLE trellis.admin_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.apps ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.tokens ENABLE ROW LEVEL SECURITY;

-- ── audit log: append-only for every role ──────────────────────────────────────────────────
CREATE TABLE trellis.audit_events (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id text NOT NULL UNIQUE,
  occurred_at timestamptz NOT NULL,
  actor_id text,
  actor_role text NOT NULL CHECK (actor_role IN ('admin', 'app_user', 'anonymous')),
  action text NOT NULL,
  resource_type text NOT NULL,
  resource_id text,
  app_id text,
  token_id text,
  policy_id text,
  outcome text NOT NULL CHECK (outcome IN ('allowed', 'denied', 'error')),
  error_code text,
  request_id text NOT NULL,
  CHECK ((outcome = 'allowed') = (error_code IS NULL))
);
CREATE INDEX audit_events_app ON trellis.audit_events (app_id, seq);
CREATE INDEX audit_events_actor ON trellis.audit_events (actor_id, seq);

CREATE FUNCTION trellis.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'trellis: % on %.% is refused: this table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
-- Triggers fire for every role, owner and superuser included; privileges alone would not stop
-- the owner.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON trellis.audit_events
  FOR EACH ROW EXECUTE FUNCTION trellis.refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON trellis.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION trellis.refuse_change();

REVOKE ALL ON trellis.audit_events FROM PUBLIC;
GRANT INSERT ON trellis.audit_events TO trellis_gateway;
ALTER TABLE trellis.audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE trellis.audit_events FORCE ROW LEVEL SECURITY;
-- The gateway writes events only for the app its claims name, only as an app user.
CREATE POLICY audit_gateway_insert ON trellis.audit_events FOR INSERT TO trellis_gateway
  WITH CHECK (app_id = trellis.claim_app() AND actor_role = 'app_user');
-- The owner (control plane) reads and appends; UPDATE/DELETE have no policy and a trigger.
CREATE POLICY audit_owner_read ON trellis.audit_events FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY audit_owner_insert ON trellis.audit_events FOR INSERT TO CURRENT_USER WITH CHECK (true);

-- Writes one gateway audit event from the request context; called inside gateway functions so
-- the event commits or rolls back with the data change. plpgsql, not sql: plpgsql caches the
-- INSERT's plan per session, a sql-language function re-plans it on every call (before PG 18).
CREATE FUNCTION trellis.audit_write(ctx jsonb, action text, resource_type text, resource_id text,
                                    outcome text, error_code text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_id, outcome, error_code, request_id)
  VALUES (ctx->>'event_id', (ctx->>'at')::timestamptz, ctx->>'sub', 'app_user', action,
    resource_type, resource_id, ctx->>'app_id', ctx->>'token_id', ctx->>'policy_id', outcome,
    error_code, ctx->>'request_id');
END $$;

-- Appends a batch of events (the server's audit group commit: reads, denials, admin reads),
-- in array order, in one durable commit. plpgsql so the INSERT's plan is cached per session.
-- Data changes never come through here; their events commit with them.
CREATE FUNCTION trellis.audit_append(events jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_id, outcome, error_code, request_id)
  SELECT x.event_id, x.occurred_at, x.actor_id, x.actor_role, x.action, x.resource_type,
         x.resource_id, x.app_id, x.token_id, x.policy_id, x.outcome, x.error_code, x.request_id
    FROM ROWS FROM (jsonb_to_recordset(events) AS (event_id text, occurred_at timestamptz,
           actor_id text, actor_role text, action text, resource_type text, resource_id text,
           app_id text, token_id text, policy_id text, outcome text, error_code text,
           request_id text)) WITH ORDINALITY AS x(event_id, occurred_at, actor_id, actor_role,
           action, resource_type, resource_id, app_id, token_id, policy_id, outcome, error_code,
           request_id, ord)
   ORDER BY x.ord;
END $$;
