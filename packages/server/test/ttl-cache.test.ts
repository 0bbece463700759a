import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { asGateway, auditFor, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const VALUE_SCHEMA = {
  type: "object",
  properties: { v: { type: "string", maxLength: 100 }, n: { type: "integer" } },
};

/** The ttl-cache template through the gateway, on PGlite and PostgreSQL. */
describe.each(DATASTORES)("ttl-cache on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let alice: string;
  let bob: string;
  const entry = (app: string, key: string) => `/api/v1/apps/${app}/entries/${key}`;
  const createCache = async (name: string) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name,
        template: "ttl-cache",
        owners: ["o@example.org"],
        payload_schema: VALUE_SCHEMA,
      },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const put = (app: string, token: string, key: string, body: Record<string, unknown>) =>
    t.call({ method: "PUT", url: entry(app, key), token, body });

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createCache("Cache A");
    alice = await issueToken(t, appA, "alice", ["put", "read"]);
    bob = await issueToken(t, appA, "bob", ["put", "read"]);
  });
  afterAll(() => t?.close());

  it("stores (201), replaces (200) and reads an entry; each put is audited with its policy", async () => {
    const first = await put(appA, alice, "greeting", { value: { v: "hello" }, ttl_seconds: 60 });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ key: "greeting", owner_id: "alice", value: { v: "hello" } });
    expect((await auditFor(t.db, first.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "entry.put",
      outcome: "allowed",
      resource_id: "greeting",
      policy_ids: ["owner-write.put"],
    });
    const second = await put(appA, alice, "greeting", { value: { v: "hi" }, ttl_seconds: 60 });
    expect(second.status).toBe(200);
    const got = await t.call({ method: "GET", url: entry(appA, "greeting"), token: alice });
    expect(got.status).toBe(200);
    expect(got.body.value).toEqual({ v: "hi" });
  });

  it("an expired entry is gone at once", async () => {
    await put(appA, alice, "brief", { value: { v: "x" }, ttl_seconds: 5 });
    expect((await t.call({ method: "GET", url: entry(appA, "brief"), token: alice })).status).toBe(
      200,
    );
    t.clock.advance(6);
    const gone = await t.call({ method: "GET", url: entry(appA, "brief"), token: alice });
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe("not_found");
  });

  it("another subject cannot replace someone's entry (owner-write); the value stays", async () => {
    await put(appA, alice, "mine", { value: { v: "alice's" }, ttl_seconds: 600 });
    const res = await put(appA, bob, "mine", { value: { v: "bob's" }, ttl_seconds: 600 });
    expect(res.status).toBe(403);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "entry.put",
      outcome: "denied",
    });
    const got = await t.call({ method: "GET", url: entry(appA, "mine"), token: alice });
    expect(got.body.value).toEqual({ v: "alice's" });
    expect((await t.call({ method: "GET", url: entry(appA, "mine"), token: bob })).status).toBe(
      404,
    );
  });

  it("a full app refuses new keys with quota_exceeded (audited), still replaces, and frees space as entries expire", async () => {
    const app = await createCache("Full");
    const token = await issueToken(t, app, "filler", ["put", "read"]);
    const quota = 10_000;
    // Fill to one below the quota directly (as the owner), half of it expiring soon.
    await t.db.query(
      `INSERT INTO trellis.ttl_cache_entries (app_id, key, owner_id, value, expires_at, updated_at)
       SELECT $1, 'k' || g, 'filler', '{}', $2::timestamptz + (CASE WHEN g % 2 = 0 THEN 30 ELSE 3600 END) * interval '1 second', $2
         FROM generate_series(1, $3) g`,
      [app, t.clock.now(), quota - 1],
    );
    expect((await put(app, token, "last", { value: {}, ttl_seconds: 3600 })).status).toBe(201);
    const full = await put(app, token, "one-more", { value: {}, ttl_seconds: 3600 });
    expect(full.status).toBe(409);
    expect(full.body.error.code).toBe("quota_exceeded");
    expect((await auditFor(t.db, full.body.error.request_id))[0]).toMatchObject({
      action: "entry.put",
      outcome: "denied",
      error_code: "quota_exceeded",
    });
    expect(
      (await put(app, token, "last", { value: { v: "again" }, ttl_seconds: 3600 })).status,
    ).toBe(200);
    t.clock.advance(60);
    expect((await put(app, token, "one-more", { value: {}, ttl_seconds: 3600 })).status).toBe(201);
    const left = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.ttl_cache_entries WHERE app_id = $1",
      [app],
    );
    expect(left.rows[0]?.n).toBeLessThan(quota); // expired entries were purged
  }, 60_000);

  it("the gateway role cannot give an entry another owner or other labels, even directly", async () => {
    expect((await put(appA, alice, "direct", { value: { v: "x" }, ttl_seconds: 60 })).status).toBe(
      201,
    );
    const as = (set: string) =>
      asGateway(t.db, { app: appA, sub: "alice", scopes: "put read" }, (q) =>
        q
          .query(
            `UPDATE trellis.ttl_cache_entries SET ${set} WHERE app_id = $1 AND key = 'direct'`,
            [appA],
          )
          .then(
            (r) => `updated ${r.rowCount}`,
            (e) => sqlState(e),
          ),
      );
    expect(await as("owner_id = 'bob'")).toBe("42501");
    expect(await as("labels = '{team=hr}'")).toBe("42501");
    expect(await as('value = \'{"text": "y"}\'')).toBe("updated 1"); // what a put does
  });

  it("app B never sees app A's entries", async () => {
    const appB = await createCache("Cache B");
    const reader = await issueToken(t, appB, "alice", ["read:all"]);
    expect(
      (await t.call({ method: "GET", url: entry(appB, "greeting"), token: reader })).status,
    ).toBe(404);
    const sql = await asGateway(t.db, { app: appB, sub: "alice", scopes: "read:all" }, (q) =>
      q.query("SELECT * FROM trellis.ttl_cache_entries"),
    );
    expect(sql.rows).toEqual([]);
  });

  it.each([
    ["a key with a space", "bad key", { value: {}, ttl_seconds: 60 }, 400, "invalid_request"],
    ["a ttl of zero", "k", { value: {}, ttl_seconds: 0 }, 400, "invalid_request"],
    ["a ttl over 30 days", "k", { value: {}, ttl_seconds: 2_592_001 }, 400, "invalid_request"],
    [
      "a value that is not an object",
      "k",
      { value: "text", ttl_seconds: 60 },
      400,
      "invalid_request",
    ],
    ["an extra field", "k", { value: {}, ttl_seconds: 60, owner_id: "x" }, 400, "invalid_request"],
    [
      "a value against the schema",
      "k",
      { value: { n: "one" }, ttl_seconds: 60 },
      422,
      "payload_invalid",
    ],
  ])(
    "refuses %s with a precise code, audited, nothing stored",
    async (_n, key, body, status, code) => {
      const res = await put(appA, alice, key, body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
        action: "entry.put",
        outcome: "denied",
        error_code: code,
      });
      const stored = await t.db.query(
        "SELECT 1 FROM trellis.ttl_cache_entries WHERE app_id = $1 AND key = 'k'",
        [appA],
      );
      expect(stored.rows).toEqual([]);
    },
  );
});
