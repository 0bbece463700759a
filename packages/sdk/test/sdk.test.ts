import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestApp, type TestApp } from "../../server/test/harness";
import {
  type App,
  createAdminClient,
  createAppClient,
  type TokenIssued,
  TrellisApiError,
} from "../src/index";

const SCHEMA = {
  type: "object",
  properties: {
    email: { type: "string", format: "email" },
    note: { type: "string", maxLength: 100 },
  },
  required: ["email"],
};

let t: TestApp;
let baseUrl: string;

beforeAll(async () => {
  t = await startTestApp("pglite");
  baseUrl = await t.listen();
});

afterAll(() => t?.close());

/** The TrellisApiError a promise rejects with (fails the test when it resolves or throws else). */
async function apiError(promise: Promise<unknown>): Promise<TrellisApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrellisApiError);
  return err as TrellisApiError;
}

describe("sdk against a real server", () => {
  const admin = () => createAdminClient({ baseUrl, token: ADMIN_TOKEN });
  let app: App;
  let writer: TokenIssued;

  beforeAll(async () => {
    app = await admin().apps.create({
      name: "Contact form",
      template: "form-intake",
      owners: ["ana@example.org", "ana@example.org", "bo@example.org"],
      payload_schema: SCHEMA,
      retention_days: 30,
    });
    writer = await admin().tokens.create(app.id, {
      subject: "alice",
      scopes: ["read", "create", "delete"],
      ttl_seconds: 600,
    });
  });

  it("lists the template catalog", async () => {
    const { items } = await admin().templates.list();
    const ids = items.map((t) => t.id);
    expect(ids).toEqual([...ids].sort());
    for (const id of [
      "approval-queue",
      "bookings",
      "directory",
      "event-log",
      "form-intake",
      "ttl-cache",
    ])
      expect(ids).toContain(id);
    expect(
      items
        .find((t) => t.id === "form-intake")
        ?.scopes.map((s) => s.name)
        .sort(),
    ).toEqual(["admin:read", "create", "delete", "read", "read:all"]);
  });

  it("creates and reads back an app", async () => {
    expect(app.id).toMatch(/^app_[0-9a-z]{26}$/);
    expect(app).toMatchObject({
      name: "Contact form",
      template: "form-intake",
      template_version: 1,
      owners: ["ana@example.org", "bo@example.org"],
      retention_days: 30,
      status: "active",
    });
    // The server normalizes the schema: every object gets additionalProperties: false.
    expect(app.payload_schema.additionalProperties).toBe(false);
    expect(await admin().apps.get(app.id)).toEqual(app);
  });

  it("issues a token with sorted scopes and an expiry about ttl seconds away", async () => {
    expect(writer.subject).toBe("alice");
    expect(writer.scopes).toEqual(["create", "delete", "read"]);
    expect(writer.token_id).toMatch(/^tok_/);
    expect(writer.token.split(".")).toHaveLength(3);
    // Against the server's (test) clock, fixed since start: a slow machine spends seconds
    // before this test, and the token still lives exactly its 600 s.
    const ttl = (Date.parse(writer.expires_at) - t.clock.now().getTime()) / 1000;
    expect(ttl).toBeGreaterThan(599);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it("creates, lists, gets and deletes submissions", async () => {
    const client = createAppClient({ baseUrl, appId: app.id, token: writer.token });
    expect(client.appId).toBe(app.id);
    const created = await client.submissions.create({
      payload: { email: "x@example.org", note: "hi" },
    });
    expect(created).toMatchObject({
      app_id: app.id,
      form_id: "default",
      submitter_id: "alice",
      payload: { email: "x@example.org", note: "hi" },
    });
    const other = await client.submissions.create({
      form_id: "signup",
      payload: { email: "y@example.org" },
    });
    expect(other.form_id).toBe("signup");

    const page = await client.submissions.list();
    expect(page.items.map((s) => s.id)).toEqual([other.id, created.id]); // newest first
    expect(page.next_cursor).toBeNull();
    const signups = await client.submissions.list({ form_id: "signup" });
    expect(signups.items.map((s) => s.id)).toEqual([other.id]);

    expect(await client.submissions.get(created.id)).toEqual(created);
    await expect(client.submissions.delete(created.id)).resolves.toBeUndefined();
    const gone = await apiError(client.submissions.get(created.id));
    expect([gone.status, gone.code]).toEqual([404, "not_found"]);
    const again = await apiError(client.submissions.delete(created.id));
    expect(again.code).toBe("not_found");
    expect((await client.submissions.list()).items.map((s) => s.id)).toEqual([other.id]);
  });

  it("all() follows next_cursor across pages, newest first, without repeats", async () => {
    const issued = await admin().tokens.create(app.id, {
      subject: "pager",
      scopes: ["create", "read"],
    });
    const client = createAppClient({ baseUrl, appId: app.id, token: issued.token });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await client.submissions.create({ payload: { email: `p${i}@example.org` } })).id);
    }
    const first = await client.submissions.list({ limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.next_cursor).toEqual(expect.any(String));

    const seen: string[] = [];
    for await (const s of client.submissions.all({ limit: 2 })) seen.push(s.id);
    expect(seen).toEqual([...ids].reverse()); // 5 entries over 3 pages; only pager's own rows
  });

  it("rejects a payload that does not match the schema with payload_invalid and issues", async () => {
    const client = createAppClient({ baseUrl, appId: app.id, token: writer.token });
    const err = await apiError(
      client.submissions.create({ payload: { email: "not-an-email", extra: 1 } }),
    );
    expect(err.status).toBe(422);
    expect(err.code).toBe("payload_invalid");
    expect(err.message).toBe("The payload does not match the app's schema.");
    expect(err.requestId).toMatch(/^req_[0-9a-z]{26}$/);
    expect(err.issues).toEqual(
      expect.arrayContaining([
        { path: "/payload", message: 'unknown field "extra"' },
        expect.objectContaining({ path: "/payload/email" }),
      ]),
    );
  });

  it("rejects a token without the needed scope with scope_missing", async () => {
    const reader = await admin().tokens.create(app.id, { subject: "reader", scopes: ["read"] });
    const client = createAppClient({ baseUrl, appId: app.id, token: reader.token });
    const err = await apiError(client.submissions.create({ payload: { email: "r@example.org" } }));
    expect([err.status, err.code]).toEqual([403, "scope_missing"]);
    expect(err.issues).toBeUndefined();
  });

  it("rejects a bad admin token with admin_token_invalid", async () => {
    const bad = createAdminClient({ baseUrl, token: "x".repeat(40) });
    const err = await apiError(bad.templates.list());
    expect([err.status, err.code]).toEqual([401, "admin_token_invalid"]);
    expect(err.requestId).toMatch(/^req_/);
  });

  it("rejects an app token on the admin API with admin_token_invalid, and sends no token as auth_required", async () => {
    const err = await apiError(
      createAdminClient({ baseUrl, token: writer.token }).apps.get(app.id),
    );
    expect(err.code).toBe("admin_token_invalid");
    const raw = await fetch(`${baseUrl}/admin/v1/templates`);
    expect(raw.status).toBe(401);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe("auth_required");
  });

  it("maps unknown apps and malformed ids to their codes", async () => {
    const missing = await apiError(admin().apps.get("app_00000000000000000000000000"));
    expect([missing.status, missing.code]).toEqual([404, "app_not_found"]);
    const malformed = await apiError(admin().apps.get("not-an-app"));
    expect([malformed.status, malformed.code]).toEqual([400, "invalid_request"]);
    expect(malformed.issues?.[0]?.path).toMatch(/^params/);
  });

  it("refuses dot segments and unusable options before any request", async () => {
    await expect(admin().apps.get("..")).rejects.toThrow(TypeError);
    await expect(admin().tokens.create(".", { subject: "s", scopes: ["read"] })).rejects.toThrow(
      /app id/,
    );
    expect(() => createAppClient({ baseUrl, appId: "%2e%2E", token: "t" })).toThrow(TypeError);
    expect(() => createAdminClient({ baseUrl: "ftp://example.org", token: "t" })).toThrow(/http/);
    expect(() => createAdminClient({ baseUrl, token: "" })).toThrow(/token/);
    expect(() => createAdminClient({ baseUrl: `${baseUrl}/?token=x`, token: "t" })).toThrow(
      /query/,
    );
  });

  it("lists audit events, filtered, with the SDK's calls in them", async () => {
    const page = await admin().audit.list({ app: app.id, limit: 200 });
    const actions = new Set(page.items.map((e) => e.action));
    for (const a of [
      "app.create",
      "app.get",
      "token.create",
      "submission.create",
      "submission.list",
      "submission.get",
      "submission.delete",
    ]) {
      expect(actions, a).toContain(a);
    }
    expect(page.items.every((e) => e.app_id === app.id)).toBe(true);
    const seqs = page.items.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a)); // newest first

    const denied = await admin().audit.list({ app: app.id, outcome: "denied" });
    expect(denied.items.length).toBeGreaterThanOrEqual(3);
    expect(denied.items.every((e) => e.outcome === "denied")).toBe(true);
    expect(denied.items.map((e) => e.error_code)).toEqual(
      expect.arrayContaining(["payload_invalid", "scope_missing", "not_found"]),
    );

    const byActor = await admin().audit.list({ actor: "alice", action: "submission.delete" });
    expect(byActor.items.map((e) => [e.outcome, e.error_code])).toEqual([
      ["denied", "not_found"],
      ["allowed", null],
    ]);

    const one = await admin().audit.list({ app: app.id, limit: 1 });
    expect(one.items).toHaveLength(1);
    const next = await admin().audit.list({
      app: app.id,
      limit: 1,
      cursor: one.next_cursor ?? undefined,
    });
    expect(next.items[0]?.seq).toBeLessThan(one.items[0]?.seq ?? 0);
  });
});

describe("sdk against answers that are not Trellis bodies", () => {
  const fake = (status: number, body: string, headers: Record<string, string> = {}) =>
    (async () => new Response(body, { status, headers })) as typeof fetch;

  it("turns a non-JSON error into code internal with the status", async () => {
    const client = createAdminClient({
      baseUrl: "http://trellis.test",
      token: "t",
      fetch: fake(502, "<html>bad gateway</html>", { "x-request-id": "req_x" }),
    });
    const err = await apiError(client.templates.list());
    expect([err.status, err.code, err.requestId]).toEqual([502, "internal", "req_x"]);
  });

  it("turns an error body with an unknown code into internal", async () => {
    const body = JSON.stringify({
      error: { code: "teapot", message: "short and stout", request_id: "req_1" },
    });
    const client = createAdminClient({
      baseUrl: "http://trellis.test",
      token: "t",
      fetch: fake(418, body),
    });
    const err = await apiError(client.templates.list());
    expect([err.status, err.code, err.requestId]).toEqual([418, "internal", null]);
  });

  it("rejects a success body that does not match the contract", async () => {
    const client = createAdminClient({
      baseUrl: "http://trellis.test",
      token: "t",
      fetch: fake(200, '{"items":[{"id":1}]}'),
    });
    const err = await apiError(client.templates.list());
    expect([err.status, err.code]).toEqual([200, "internal"]);
  });

  it("sends the token only in the Authorization header, and keeps a base path", async () => {
    const seen: { url: string; auth: string | null }[] = [];
    const spy = (async (input: string | URL | Request, init?: RequestInit) => {
      seen.push({ url: String(input), auth: new Headers(init?.headers).get("authorization") });
      return new Response(JSON.stringify({ items: [], next_cursor: null }), { status: 200 });
    }) as typeof fetch;
    const client = createAppClient({
      baseUrl: "http://trellis.test/base/",
      appId: "app_1",
      token: "secret-token",
      fetch: spy,
    });
    await client.submissions.list({ limit: 5, cursor: "c 1" });
    expect(seen).toEqual([
      {
        url: "http://trellis.test/base/api/v1/apps/app_1/submissions?limit=5&cursor=c+1",
        auth: "Bearer secret-token",
      },
    ]);
  });

  it("all() stops with an error when the server repeats a cursor", async () => {
    const page = JSON.stringify({ items: [], next_cursor: "same" });
    const client = createAppClient({
      baseUrl: "http://trellis.test",
      appId: "app_1",
      token: "t",
      fetch: fake(200, page),
    });
    const err = await apiError(
      (async () => {
        for await (const _ of client.submissions.all()) {
          /* drain */
        }
      })(),
    );
    expect(err.message).toMatch(/repeated/);
  });
});

describe("sdk: token lifecycle and key rotation", () => {
  it("lists, revokes one, revokes all, and rotates the signing key", async () => {
    const admin = createAdminClient({ baseUrl, token: ADMIN_TOKEN });
    const app = await admin.apps.create({
      name: "Lifecycle",
      template: "form-intake",
      owners: ["o@example.org"],
      payload_schema: SCHEMA,
    });
    const one = await admin.tokens.create(app.id, { subject: "one", scopes: ["read"] });
    const two = await admin.tokens.create(app.id, { subject: "two", scopes: ["read"] });
    const listed = await admin.tokens.list(app.id);
    expect(listed.items.map((i) => i.token_id).sort()).toEqual([one.token_id, two.token_id].sort());
    expect(listed.items.every((i) => i.status === "active")).toBe(true);

    await admin.tokens.revoke(app.id, one.token_id);
    const asOne = createAppClient({ baseUrl, appId: app.id, token: one.token });
    expect((await apiError(asOne.submissions.list())).code).toBe("token_revoked");
    const asTwo = createAppClient({ baseUrl, appId: app.id, token: two.token });
    expect((await asTwo.submissions.list()).items).toEqual([]);

    await admin.tokens.revokeAll(app.id);
    expect((await apiError(asTwo.submissions.list())).code).toBe("token_revoked");
    const statuses = (await admin.tokens.list(app.id)).items.map((i) => i.status);
    expect(statuses).toEqual(["revoked", "revoked"]);

    const { kid } = await admin.keys.rotate();
    expect(kid).toMatch(/^key_/);
    expect(
      (await apiError(admin.tokens.revoke(app.id, "tok_00000000000000000000000000"))).code,
    ).toBe("not_found");
  });
});

describe("sdk: policies, renewal and pause", () => {
  const admin = () => createAdminClient({ baseUrl, token: ADMIN_TOKEN });

  it("chooses blocks, explains a decision, runs a suite, renews and pauses", async () => {
    const { items } = await admin().policy.blocks();
    expect(items.map((b) => b.id)).toContain("prod-writes-only");
    const app = await admin().apps.create({
      name: "Policies",
      template: "form-intake",
      owners: ["o@example.org"],
      payload_schema: { type: "object", properties: { t: { type: "string" } } },
      environment: "prod",
    });
    expect(app.environment).toBe("prod");
    const view = await admin().policy.setBlocks(app.id, ["owner-read", "owner-write", "read-only"]);
    expect(view.blocks).toEqual(["owner-read", "owner-write", "read-only"]);
    const why = await admin().policy.explain(app.id, {
      principal: { sub: "alice", scopes: ["create"] },
      action: "create",
    });
    expect(why).toMatchObject({ decision: "deny", determining_policies: [{ id: "read-only" }] });
    const suite = await admin().policy.test(
      app.id,
      "principals: { a: { sub: a, scopes: [read] } }\nresources: { r: { owner: a } }\ntests: [{ name: own, principal: a, action: read, resource: r, expect: allow }]\n",
    );
    expect(suite).toMatchObject({ passed: 1, failed: 0 });
    const bad = await apiError(admin().policy.addCustom(app.id, { id: "custom.x", cedar: "nope" }));
    expect(bad.code).toBe("policy_invalid");

    const issued = await admin().tokens.create(app.id, { subject: "alice", scopes: ["read"] });
    expect(issued.environment).toBe("prod");
    const renewed = await admin().tokens.renew(app.id, issued.token_id);
    expect("token" in renewed && renewed.renewed_from).toBe(issued.token_id);
    const pending = await admin().tokens.renew(app.id, issued.token_id, {
      scopes: ["read", "delete"],
    });
    expect("approval_request_id" in pending).toBe(true);
    expect((await admin().apps.approvalRequests(app.id)).items[0]?.kind).toBe("token_renewal");

    expect((await admin().apps.pause(app.id)).status).toBe("paused");
    const client = createAppClient({
      baseUrl,
      appId: app.id,
      token: "token" in renewed ? renewed.token : "",
    });
    expect((await apiError(client.submissions.list())).code).toBe("app_paused");
    expect((await admin().apps.resume(app.id)).status).toBe("active");
  });
});

describe("sdk: the event-log, directory and ttl-cache templates", () => {
  const admin = () => createAdminClient({ baseUrl, token: ADMIN_TOKEN });
  const appOf = async (template: string, scopes: string[]) => {
    const app = await admin().apps.create({
      name: template,
      template,
      owners: ["o@example.org"],
      payload_schema: {
        type: "object",
        properties: { name: { type: "string" }, n: { type: "integer" } },
      },
    });
    const { token } = await admin().tokens.create(app.id, { subject: "ana", scopes });
    return createAppClient({ baseUrl, appId: app.id, token });
  };

  it("appends and reads events in order", async () => {
    const log = await appOf("event-log", ["append", "read"]);
    expect((await log.events.append({ type: "a", data: { n: 1 } })).seq).toBe(1);
    expect((await log.events.append({ type: "b", data: { n: 2 } })).seq).toBe(2);
    const page = await log.events.list({ after: 1 });
    expect(page.items.map((e) => e.type)).toEqual(["b"]);
  });

  it("creates, finds, updates and deletes directory items", async () => {
    const dir = await appOf("directory", ["create", "read", "update", "delete"]);
    const item = await dir.items.create({ kind: "room", attrs: { name: "Blue", n: 8 } });
    expect(
      (await dir.items.list({ kind: "room", attrs: { n: 8 } })).items.map((i) => i.id),
    ).toEqual([item.id]);
    expect((await dir.items.update(item.id, { n: null })).attrs).toEqual({ name: "Blue" });
    await dir.items.delete(item.id);
    expect((await apiError(dir.items.get(item.id))).code).toBe("not_found");
  });

  it("puts and gets cache entries", async () => {
    const cache = await appOf("ttl-cache", ["put", "read"]);
    expect((await cache.entries.put("s:1", { name: "ana" }, 60)).value).toEqual({ name: "ana" });
    expect((await cache.entries.get("s:1")).owner_id).toBe("ana");
    expect((await apiError(cache.entries.get("s:2"))).code).toBe("not_found");
    expect((await apiError(cache.items.list())).code).toBe("resource_not_in_template");
  });

  it("books, refuses an overlapping slot with booking_conflict, lists by time, cancels", async () => {
    const rooms = await appOf("bookings", ["create", "read", "cancel"]);
    const b = await rooms.bookings.create({
      resource: "Room 1",
      starts_at: "2030-03-02T10:00:00+01:00",
      ends_at: "2030-03-02T11:00:00+01:00",
    });
    expect(b).toMatchObject({
      resource: "Room 1",
      owner_id: "ana",
      starts_at: "2030-03-02T09:00:00.000Z",
      ends_at: "2030-03-02T10:00:00.000Z",
    });
    const later = {
      resource: "Room 1",
      starts_at: "2030-03-02T09:30:00Z",
      ends_at: "2030-03-02T10:30:00Z",
    };
    const clash = await apiError(rooms.bookings.create(later));
    expect([clash.status, clash.code]).toEqual([409, "booking_conflict"]);
    const during = await rooms.bookings.list({
      resource: "Room 1",
      from: "2030-03-02T09:30:00Z",
      to: "2030-03-02T09:45:00Z",
    });
    expect(during.items.map((x) => x.id)).toEqual([b.id]);
    expect((await rooms.bookings.list({ from: "2030-03-02T10:00:00Z" })).items).toEqual([]);
    expect((await rooms.bookings.get(b.id)).id).toBe(b.id);
    await rooms.bookings.cancel(b.id);
    expect((await apiError(rooms.bookings.get(b.id))).code).toBe("not_found");
    expect((await rooms.bookings.create(later)).starts_at).toBe("2030-03-02T09:30:00.000Z");
  });

  it("exports an app and a template; a second import or a non-export is refused", async () => {
    const dir = await appOf("directory", ["create"]);
    await dir.items.create({ kind: "room", attrs: { name: "Blue" } });
    const ndjson = await admin().apps.export(dir.appId);
    expect(ndjson.trimEnd().split("\n")).toHaveLength(3); // header, one row, end
    expect((await apiError(admin().apps.import(ndjson))).code).toBe("app_exists");
    const e = await apiError(admin().apps.import('{"type":"header"}\n'));
    expect(e.code).toBe("import_invalid");
    expect(e.issues?.[0]?.path).toMatch(/^\/line\/1\//);
    expect((await admin().templates.export("directory")).ddl[0]?.name).toBe("0001_items.sql");
    expect((await apiError(admin().apps.upgrade(dir.appId))).code).toBe("upgrade_not_available");
  });

  it("exports the audit log as CSV, filtered by resource", async () => {
    const dir = await appOf("directory", ["create"]);
    const csv = await admin().audit.export({ resource_id: dir.appId, format: "csv" });
    const rows = csv.trimEnd().split("\n");
    expect(rows[0]?.startsWith("seq,event_id,timestamp")).toBe(true);
    expect(rows.slice(1).every((r) => r.includes(dir.appId))).toBe(true);
    expect(rows.length).toBeGreaterThan(1);
  });

  it("a steward approves another admin's custom template; then it is in the catalog", async () => {
    const ana = createAdminClient({
      baseUrl,
      token: (await admin().admins.create({ name: "Ana", roles: ["admin"] })).token,
    });
    const samCred = await admin().admins.create({ name: "Sam", roles: ["steward"] });
    const sam = createAdminClient({ baseUrl, token: samCred.token });
    const draft = await ana.customTemplates.submit({
      id: "sdk-assets",
      base: "directory",
      title: "Assets",
      description: "Things handed out to people, and who holds each.",
      payload_schema: { type: "object", properties: { name: { type: "string" } } },
    });
    expect(draft.status).toBe("draft");
    expect((await apiError(ana.customTemplates.approve("sdk-assets", 1))).code).toBe(
      "role_missing",
    );
    expect((await sam.customTemplates.approve("sdk-assets", 1, "ok")).status).toBe("approved");
    expect((await ana.templates.list()).items.map((t) => t.id)).toContain("sdk-assets");
    expect((await admin().admins.list()).items.map((a) => a.name)).toContain("Sam");
    await admin().admins.revoke(samCred.id);
    expect((await apiError(sam.customTemplates.list())).code).toBe("admin_token_invalid");
  });

  it("files, reviews and approves a request; an illegal move lists the allowed ones", async () => {
    const ana = await appOf("approval-queue", ["create", "read", "withdraw"]);
    const r = await ana.requests.create({ payload: { name: "Laptop" }, assigned_reviewer: "rita" });
    expect(r.state).toBe("requested");
    const { token } = await admin().tokens.create(ana.appId, {
      subject: "rita",
      scopes: ["read", "review"],
    });
    const rita = createAppClient({ baseUrl, appId: ana.appId, token });
    expect((await rita.requests.list({ role: "reviewer" })).items.map((x) => x.id)).toEqual([r.id]);
    const skip = await apiError(rita.requests.transition(r.id, "approved"));
    expect(skip.code).toBe("transition_not_allowed");
    expect(skip.allowed).toEqual(["reviewing"]);
    await rita.requests.transition(r.id, "reviewing");
    expect((await rita.requests.transition(r.id, "approved")).state).toBe("approved");
    expect((await ana.requests.get(r.id)).state).toBe("approved");
  });
});
