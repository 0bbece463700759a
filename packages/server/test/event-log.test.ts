import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import {
  asGateway,
  auditFor,
  createApp,
  DATASTORES,
  issueToken,
  SCHEMA,
  startTestApp,
  type TestApp,
} from "./harness";

/** The event-log template through the gateway, on PGlite and PostgreSQL. */
describe.each(DATASTORES)("event-log on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  let writer: string;
  let manager: string;
  const events = (app: string) => `/api/v1/apps/${app}/events`;
  const createLog = async (name: string) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: { name, template: "event-log", owners: ["o@example.org"], payload_schema: SCHEMA },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const append = (app: string, token: string, body: Record<string, unknown>) =>
    t.call({ method: "POST", url: events(app), token, body });

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createLog("Log A");
    appB = await createLog("Log B");
    writer = await issueToken(t, appA, "wren", ["append", "read"]);
    manager = await issueToken(t, appA, "mia", ["read:all"]);
  });
  afterAll(() => t?.close());

  it("numbers each app's events 1, 2, 3… and returns them in order, audited", async () => {
    const first = await append(appA, writer, { type: "door.opened", data: { title: "front" } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ seq: 1, type: "door.opened", author_id: "wren" });
    expect((await auditFor(t.db, first.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "event.append",
      outcome: "allowed",
      resource_id: first.body.id,
      policy_ids: ["owner-write.append"],
    });
    const second = await append(appA, writer, { type: "door.closed", data: { title: "front" } });
    expect(second.body.seq).toBe(2);
    const otherApp = await append(appB, await issueToken(t, appB, "x", ["append"]), {
      type: "a",
      data: { title: "b" },
    });
    expect(otherApp.body.seq).toBe(1);
    const page = await t.call({ method: "GET", url: events(appA), token: writer });
    expect(page.status).toBe(200);
    expect(page.body.items.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
    expect(page.body.next_after).toBeNull();
  });

  it("reads by range with after and limit, and pages with next_after", async () => {
    const app = await createLog("Range");
    const token = await issueToken(t, app, "r", ["append", "read"]);
    for (let i = 0; i < 5; i++) await append(app, token, { type: "tick", data: { title: `${i}` } });
    const p1 = await t.call({ method: "GET", url: `${events(app)}?limit=2`, token });
    expect(p1.body.items.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
    expect(p1.body.next_after).toBe(2);
    const p2 = await t.call({ method: "GET", url: `${events(app)}?after=2&limit=2`, token });
    expect(p2.body.items.map((e: { seq: number }) => e.seq)).toEqual([3, 4]);
    const p3 = await t.call({ method: "GET", url: `${events(app)}?after=4&limit=2`, token });
    expect(p3.body.items.map((e: { seq: number }) => e.seq)).toEqual([5]);
    expect(p3.body.next_after).toBeNull();
  });

  it("concurrent appends get distinct numbers without gaps", async () => {
    const app = await createLog("Busy");
    const token = await issueToken(t, app, "busy", ["append", "read"]);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        append(app, token, { type: "hit", data: { title: `${i}` } }),
      ),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    const seqs = results.map((r) => r.body.seq as number).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it("people read their own events; read:all reads the app's; app B never sees app A's", async () => {
    const other = await issueToken(t, appA, "otto", ["append", "read"]);
    await append(appA, other, { type: "otto.did", data: { title: "x" } });
    const own = await t.call({ method: "GET", url: events(appA), token: other });
    expect(own.body.items.map((e: { author_id: string }) => e.author_id)).toEqual(["otto"]);
    const all = await t.call({ method: "GET", url: events(appA), token: manager });
    expect(new Set(all.body.items.map((e: { author_id: string }) => e.author_id))).toEqual(
      new Set(["wren", "otto"]),
    );
    const cross = await t.call({ method: "GET", url: events(appB), token: manager });
    expect(cross.status).toBe(403);
    expect(cross.body.error.code).toBe("token_wrong_app");
    const sql = await asGateway(t.db, { app: appB, sub: "mia", scopes: "read:all" }, (q) =>
      q.query<{ app_id: string }>("SELECT app_id FROM trellis.event_log_events"),
    );
    expect(new Set(sql.rows.map((r) => r.app_id))).toEqual(new Set([appB]));
  });

  it("no role can change, delete or truncate an event", async () => {
    const fails = (p: Promise<unknown>) =>
      p.then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(await fails(t.db.query("UPDATE trellis.event_log_events SET type = 'x'"))).toBe("42501");
    expect(await fails(t.db.query("DELETE FROM trellis.event_log_events"))).toBe("42501");
    expect(await fails(t.db.query("TRUNCATE trellis.event_log_events"))).toBe("42501");
    for (const sql of [
      "UPDATE trellis.event_log_events SET type = 'x'",
      "DELETE FROM trellis.event_log_events",
    ]) {
      expect(
        await asGateway(t.db, { app: appA, sub: "wren", scopes: "append read:all" }, (q) =>
          fails(q.query(sql)),
        ),
      ).toBe("42501");
    }
  });

  it.each([
    ["a missing type", { data: { title: "x" } }, 400, "invalid_request"],
    ["data that is not an object", { type: "a", data: "text" }, 400, "invalid_request"],
    ["an extra field", { type: "a", data: { title: "x" }, seq: 99 }, 400, "invalid_request"],
    [
      "an oversized type",
      { type: `a${"b".repeat(64)}`, data: { title: "x" } },
      400,
      "invalid_request",
    ],
    [
      "data against the app's schema",
      { type: "a", data: { priority: "urgent" } },
      422,
      "payload_invalid",
    ],
  ])("refuses %s with a precise code, audited, nothing stored", async (_n, body, status, code) => {
    const before = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.event_log_events WHERE app_id = $1",
      [appA],
    );
    const res = await append(appA, writer, body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "event.append",
      outcome: "denied",
      error_code: code,
    });
    const after = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.event_log_events WHERE app_id = $1",
      [appA],
    );
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
  });

  it("a token without append, and the events route on a form-intake app, are refused", async () => {
    const res = await append(appA, manager, { type: "a", data: { title: "x" } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("scope_missing");
    const form = await createApp(t, "Form");
    const formToken = await issueToken(t, form, "f", ["create", "read"]);
    const wrong = await t.call({ method: "GET", url: events(form), token: formToken });
    expect(wrong.status).toBe(404);
    expect(wrong.body.error.code).toBe("resource_not_in_template");
    expect((await auditFor(t.db, wrong.body.error.request_id))[0]).toMatchObject({
      outcome: "denied",
      error_code: "resource_not_in_template",
    });
    const submissions = await t.call({
      method: "GET",
      url: `/api/v1/apps/${appA}/submissions`,
      token: writer,
    });
    expect(submissions.status).toBe(404);
    expect(submissions.body.error.code).toBe("resource_not_in_template");
  });

  it("read-only stops appends at once (policy_denied); reads go on", async () => {
    const app = await createLog("Frozen");
    const token = await issueToken(t, app, "fz", ["append", "read"]);
    await append(app, token, { type: "a", data: { title: "x" } });
    await t.call({
      method: "PUT",
      url: `/admin/v1/apps/${app}/policy/blocks`,
      body: { blocks: ["owner-read", "owner-write", "read-only"] },
    });
    const refused = await append(app, token, { type: "b", data: { title: "y" } });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("policy_denied");
    expect((await t.call({ method: "GET", url: events(app), token })).body.items).toHaveLength(1);
  });
});
