-- The control plane (the schema's owner, the DATABASE_URL user) reaches an app's rows in the
-- template tables only for export, import and upgrades, and only the rows of the one app its
-- transaction names in trellis.control_app (transaction-local). FORCE ROW LEVEL SECURITY holds
-- for the owner too, so without these policies a non-superuser owner would see no rows at all
-- (an export would be silently empty). A superuser bypasses row-level security anyway.
CREATE FUNCTION trellis.control_app() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('trellis.control_app', true), '') $$;

-- Every template table calls this in its migrations (`trellis template check` requires it).
CREATE FUNCTION trellis.allow_control_plane(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE POLICY control_plane_read ON %s FOR SELECT TO %I
                    USING (app_id = trellis.control_app())', tbl, current_user);
  EXECUTE format('CREATE POLICY control_plane_insert ON %s FOR INSERT TO %I
                    WITH CHECK (app_id = trellis.control_app())', tbl, current_user);
  EXECUTE format('CREATE POLICY control_plane_update ON %s FOR UPDATE TO %I
                    USING (app_id = trellis.control_app())
                    WITH CHECK (app_id = trellis.control_app())', tbl, current_user);
END $$;
