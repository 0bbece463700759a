-- trellis.set_claims in plpgsql: its statement's plan is cached per session. As a sql-language
-- function it was set up anew on every call: measured on a directory create, 240 → 188-204 µs of
-- database CPU per governed call (bare INSERT ~110), which lifts every template function that
-- sets its claims through it (docs/benchmarks.md, issue 4).
CREATE OR REPLACE FUNCTION trellis.set_claims(ctx jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('trellis.app_id', coalesce(ctx->>'app_id', ''), true),
          set_config('trellis.sub', coalesce(ctx->>'sub', ''), true),
          set_config('trellis.scopes', coalesce(ctx->>'scopes', ''), true),
          set_config('trellis.labels', coalesce(ctx->>'labels', ''), true),
          set_config('trellis.env', coalesce(ctx->>'env', ''), true),
          set_config('trellis.app_env', coalesce(ctx->>'app_env', ''), true),
          set_config('trellis.blocks', coalesce(ctx->>'blocks', ''), true);
END $$;
