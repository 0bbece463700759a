import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Queryable } from "../src/db/db";
import { sqlState } from "../src/db/db";
import { ctxParam } from "../src/gateway/gateway-ctx";
import {
  asGateway,
  createApp,
  DATASTORES,
  issueToken,
  startTestApp,
  type TestApp,
} from "./harness";

const failsWith = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return sqlState(err);
  }
  return "no error";
};

describe.each(DATASTORES)("row-level security and roles on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  const titles = (rows: Array<{ payload: { title: string } }>) =>
    rows.map((r) => r.payload.title).sort();

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createApp(t, "A");
    appB = await createApp(t, "B");
    const post = async (app: string, subject: string, title: string) => {
      const token = await issueToken(t, app, subject, ["create"]);
      const res = await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/submissions`,
        token,
        body: { payload: { title } },
      });
      expect(res.status).toBe(201);
    };
    await post(appA, "alice", "a-alice");
    await post(appA, "bob", "a-bob");
    await post(appB, "alice", "b-alice");
  });
  afterAll(() => t?.close());

  it("trellis_gateway is not a superuser, cannot bypass RLS, cannot log in, and owns no table", async () => {
    const role = await t.db.query(
      "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'trellis_gateway'",
    );
    expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: false }]);
    const owned = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'trellis' AND tableowner = 'trellis_gateway'",
    );
    expect(owned.rows[0]?.n).toBe(0);
  });

  it("every table the gateway can touch has app_id and ENABLE + FORCE row-level security", async () => {
    const { rows } = await t.db.query<{
      table: string;
      rls: boolean;
      force: boolean;
      has_app_id: boolean;
    }>(
      `SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS force,
              EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'app_id' AND NOT a.attisdropped) AS has_app_id
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'trellis' AND c.relkind = 'r'
          AND (has_table_privilege('trellis_gateway', c.oid, 'SELECT') OR has_table_privilege('trellis_gateway', c.oid, 'INSERT')
               OR has_table_privilege('trellis_gateway', c.oid, 'UPDATE') OR has_table_privilege('trellis_gateway', c.oid, 'DELETE'))`,
    );
    expect(rows.map((r) => r.table).sort()).toEqual([
      "approval_queue_requests",
      "audit_events",
      "bookings",
      "directory_items",
      "event_log_events",
      "event_log_heads",
      "form_intake_submissions",
      "ttl_cache_entries",
    ]);
    for (const r of rows)
      expect(r, r.table).toMatchObject({ rls: true, force: true, has_app_id: true });
  });

  it("with app A's claims, SQL as trellis_gateway never sees app B's rows", async () => {
    const rows = await asGateway(t.db, { app: appA, sub: "alice", scopes: "read:all" }, (q) =>
      q.query<{ app_id: string; payload: { title: string } }>(
        "SELECT app_id, payload FROM trellis.form_intake_submissions",
      ),
    );
    expect(titles(rows.rows)).toEqual(["a-alice", "a-bob"]);
    // Even asking for B's rows by name returns nothing.
    const explicit = await asGateway(t.db, { app: appA, sub: "alice", scopes: "read:all" }, (q) =>
      q.query("SELECT * FROM trellis.form_intake_submissions WHERE app_id = $1", [appB]),
    );
    expect(explicit.rows).toEqual([]);
  });

  it("without read:all a subject sees only its own rows; with no claims nothing at all", async () => {
    const own = await asGateway(t.db, { app: appA, sub: "alice", scopes: "read" }, (q) =>
      q.query<{ payload: { title: string } }>(
        "SELECT payload FROM trellis.form_intake_submissions",
      ),
    );
    expect(titles(own.rows)).toEqual(["a-alice"]);
    const none = await asGateway(t.db, {}, (q) =>
      q.query("SELECT * FROM trellis.form_intake_submissions"),
    );
    expect(none.rows).toEqual([]);
  });

  it("inserting needs the create scope, the caller as submitter, and the caller's app", async () => {
    const insert = (q: Queryable, app: string, submitter: string) =>
      q.query(
        "INSERT INTO trellis.form_intake_submissions (id, app_id, form_id, submitter_id, payload, created_at) VALUES (gen_random_uuid(), $1, 'default', $2, '{}', now())",
        [app, submitter],
      );
    expect(
      await asGateway(t.db, { app: appA, sub: "alice", scopes: "create" }, (q) =>
        insert(q, appA, "alice").then(() => "ok"),
      ),
    ).toBe("ok");
    expect(
      await asGateway(t.db, { app: appA, sub: "alice", scopes: "read" }, (q) =>
        failsWith(insert(q, appA, "alice")),
      ),
    ).toBe("42501");
    expect(
      await asGateway(t.db, { app: appA, sub: "alice", scopes: "create" }, (q) =>
        failsWith(insert(q, appB, "alice")),
      ),
    ).toBe("42501");
    expect(
      await asGateway(t.db, { app: appA, sub: "alice", scopes: "create" }, (q) =>
        failsWith(insert(q, appA, "bob")),
      ),
    ).toBe("42501");
  });

  it("submissions are append-only: no payload update (any role), no hard delete by the gateway", async () => {
    const gwUpdate = await asGateway(
      t.db,
      { app: appA, sub: "alice", scopes: "read delete" },
      (q) =>
        failsWith(
          q.query('UPDATE trellis.form_intake_submissions SET payload = \'{"title":"changed"}\''),
        ),
    );
    expect(gwUpdate).toBe("42501");
    const gwDelete = await asGateway(
      t.db,
      { app: appA, sub: "alice", scopes: "read delete" },
      (q) => failsWith(q.query("DELETE FROM trellis.form_intake_submissions")),
    );
    expect(gwDelete).toBe("42501");
    const ownerUpdate = await failsWith(
      t.db.query("UPDATE trellis.form_intake_submissions SET payload = '{}'"),
    );
    expect(ownerUpdate).toBe("42501");
    const titlesNow = await t.db.query<{ payload: { title: string } }>(
      "SELECT payload FROM trellis.form_intake_submissions WHERE app_id = $1",
      [appA],
    );
    expect(titles(titlesNow.rows)).toEqual(["a-alice", "a-bob"]);
  });

  it("the audit log refuses UPDATE, DELETE and TRUNCATE for the owner and the gateway", async () => {
    const before = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    expect(
      await failsWith(
        t.db.query("UPDATE trellis.audit_events SET outcome = 'allowed', error_code = NULL"),
      ),
    ).toBe("42501");
    expect(await failsWith(t.db.query("DELETE FROM trellis.audit_events"))).toBe("42501");
    expect(await failsWith(t.db.query("TRUNCATE trellis.audit_events"))).toBe("42501");
    for (const sql of [
      "UPDATE trellis.audit_events SET actor_id = 'x'",
      "DELETE FROM trellis.audit_events",
      "TRUNCATE trellis.audit_events",
      "SELECT * FROM trellis.audit_events",
    ]) {
      expect(
        await asGateway(t.db, { app: appA, sub: "alice", scopes: "read" }, (q) =>
          failsWith(q.query(sql)),
        ),
        sql,
      ).toBe("42501");
    }
    const after = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
  });

  it("the gateway may append audit events only for the app its claims name", async () => {
    const insert = (q: Queryable, app: string) =>
      q.query(
        `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action, resource_type, app_id, outcome, request_id)
         VALUES ('evt_forged_' || md5(random()::text), now(), 'alice', 'app_user', 'submission.get', 'submission', $1, 'allowed', 'req_x')`,
        [app],
      );
    expect(
      await asGateway(t.db, { app: appA, sub: "alice" }, (q) => insert(q, appA).then(() => "ok")),
    ).toBe("ok");
    expect(
      await asGateway(t.db, { app: appA, sub: "alice" }, (q) => failsWith(insert(q, appB))),
    ).toBe("42501");
  });

  it("control-plane tables (apps, tokens, keys, admin credentials) are closed to the gateway", async () => {
    for (const table of ["apps", "tokens", "signing_keys", "admin_credentials"]) {
      expect(
        await asGateway(t.db, { app: appA, sub: "alice", scopes: "read:all" }, (q) =>
          failsWith(q.query(`SELECT * FROM trellis.${table}`)),
        ),
        table,
      ).toBe("42501");
    }
  });

  it("a data change and its audit event commit together: a failing audit write leaves no submission", async () => {
    const token = await issueToken(t, appA, "dora", ["create", "read"]);
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM trellis.form_intake_submissions WHERE submitter_id = 'dora'",
        )
      ).rows[0]?.n;
    // Simulate a crash at the audit write: a trigger that fails every submission.create event.
    await t.db.exec(`
      CREATE FUNCTION trellis.test_crash() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.action = 'submission.create' THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER test_crash BEFORE INSERT ON trellis.audit_events FOR EACH ROW EXECUTE FUNCTION trellis.test_crash();`);
    try {
      const res = await t.call({
        method: "POST",
        url: `/api/v1/apps/${appA}/submissions`,
        token,
        body: { payload: { title: "lost?" } },
      });
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe("internal");
      expect(JSON.stringify(res.body)).not.toContain("simulated crash");
      expect(await count()).toBe(0);
    } finally {
      await t.db.exec(
        "DROP TRIGGER test_crash ON trellis.audit_events; DROP FUNCTION trellis.test_crash();",
      );
    }
    const ok = await t.call({
      method: "POST",
      url: `/api/v1/apps/${appA}/submissions`,
      token,
      body: { payload: { title: "kept" } },
    });
    expect(ok.status).toBe(201);
    expect(await count()).toBe(1);
  });

  it("and the other way round: a refused data change leaves no 'allowed' event", async () => {
    const ctx = {
      app_id: appA,
      sub: "eve",
      scopes: "read",
      labels: "",
      env: "dev",
      app_env: "dev",
      blocks: "owner-read owner-write app-read",
      policy_ids: "",
      token_id: "tok_x",
      event_id: "evt_refused_write",
      request_id: "req_refused",
      at: new Date().toISOString(),
    };
    const err = await failsWith(
      t.db.query(
        "SELECT trellis.gw_form_intake_create($1::trellis.gw_ctx, gen_random_uuid(), 'default', '{\"title\":\"x\"}'::jsonb, NULL)",
        [ctxParam(ctx)],
      ),
    );
    expect(err).toBe("42501");
    const events = await t.db.query(
      "SELECT * FROM trellis.audit_events WHERE event_id = 'evt_refused_write'",
    );
    expect(events.rows).toEqual([]);
  });
});
