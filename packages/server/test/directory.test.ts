import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { asGateway, auditFor, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const ITEM_SCHEMA = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 100 },
    color: { type: "string", maxLength: 20 },
    seats: { type: "integer", minimum: 0 },
  },
};

/** The directory template through the gateway, on PGlite and PostgreSQL. */
describe.each(DATASTORES)("directory on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  let ana: string;
  let ben: string;
  let boss: string;
  const items = (app: string) => `/api/v1/apps/${app}/items`;
  const createDir = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name,
        template: "directory",
        owners: ["o@example.org"],
        payload_schema: ITEM_SCHEMA,
        ...extra,
      },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const add = (app: string, token: string, body: Record<string, unknown>) =>
    t.call({ method: "POST", url: items(app), token, body });
  const names = (res: { body: { items: Array<{ attrs: { name: string } }> } }) =>
    res.body.items.map((i) => i.attrs.name).sort();

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createDir("Rooms");
    appB = await createDir("Other");
    ana = await issueToken(t, appA, "ana", ["create", "read", "update", "delete"]);
    ben = await issueToken(t, appA, "ben", ["create", "read", "update", "delete"]);
    boss = await issueToken(t, appA, "boss", ["read:all"]);
    await add(appA, ana, { kind: "room", attrs: { name: "Blue room", color: "blue", seats: 8 } });
    await add(appA, ana, { kind: "room", attrs: { name: "Red room", color: "red", seats: 4 } });
    await add(appA, ana, { kind: "laptop", attrs: { name: "X1", color: "black" } });
    await add(appA, ben, { kind: "room", attrs: { name: "Ben's room", color: "blue", seats: 2 } });
  });
  afterAll(() => t?.close());

  it("creates an item with its id, owner, labels and times; audited with its policy", async () => {
    const res = await add(appA, ben, { kind: "desk", attrs: { name: "Desk 1" } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ kind: "desk", owner_id: "ben", attrs: { name: "Desk 1" } });
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "item.create",
      policy_ids: ["owner-write.create"],
      resource_id: res.body.id,
    });
  });

  it("queries by kind and by attribute equality (strings and numbers)", async () => {
    expect(
      names(await t.call({ method: "GET", url: `${items(appA)}?kind=room`, token: ana })),
    ).toEqual(["Blue room", "Red room"]);
    expect(
      names(await t.call({ method: "GET", url: `${items(appA)}?attr.color=blue`, token: boss })),
    ).toEqual(["Ben's room", "Blue room"]);
    expect(
      names(
        await t.call({ method: "GET", url: `${items(appA)}?kind=room&attr.seats=4`, token: boss }),
      ),
    ).toEqual(["Red room"]);
    const bad = await t.call({ method: "GET", url: `${items(appA)}?colour=blue`, token: boss });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
  });

  it("PATCH merges attrs (null removes one), validated against the app's schema", async () => {
    const made = await add(appA, ana, { kind: "room", attrs: { name: "Green", color: "green" } });
    const res = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${made.body.id}`,
      token: ana,
      body: { attrs: { seats: 10, color: null } },
    });
    expect(res.status).toBe(200);
    expect(res.body.attrs).toEqual({ name: "Green", seats: 10 });
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "item.update",
      outcome: "allowed",
      policy_ids: ["owner-read", "owner-write.update"],
    });
    const invalid = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${made.body.id}`,
      token: ana,
      body: { attrs: { name: null } },
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.code).toBe("payload_invalid");
    const wrongType = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${made.body.id}`,
      token: ana,
      body: { attrs: { seats: "many" } },
    });
    expect(wrongType.status).toBe(422);
    const got = await t.call({ method: "GET", url: `${items(appA)}/${made.body.id}`, token: ana });
    expect(got.body.attrs).toEqual({ name: "Green", seats: 10 });
  });

  it("owner-write: ben cannot change or delete ana's item; boss reads it but cannot change it", async () => {
    const mine = await add(appA, ana, { kind: "room", attrs: { name: "Ana's" } });
    const byBen = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${mine.body.id}`,
      token: ben,
      body: { attrs: { color: "pink" } },
    });
    expect(byBen.status).toBe(404); // ben cannot even see it
    expect(
      (await t.call({ method: "DELETE", url: `${items(appA)}/${mine.body.id}`, token: ben }))
        .status,
    ).toBe(404);
    const bossRead = await t.call({
      method: "GET",
      url: `${items(appA)}/${mine.body.id}`,
      token: boss,
    });
    expect(bossRead.status).toBe(200);
    const bossWriter = await issueToken(t, appA, "boss", ["read:all", "update"]);
    const byBoss = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${mine.body.id}`,
      token: bossWriter,
      body: { attrs: { color: "pink" } },
    });
    expect(byBoss.status).toBe(403);
    expect(byBoss.body.error.code).toBe("policy_denied");
  });

  it("soft delete: gone from reads, kept in the table, cannot be undone by the gateway", async () => {
    const doomed = await add(appA, ana, { kind: "laptop", attrs: { name: "Old" } });
    const del = await t.call({
      method: "DELETE",
      url: `${items(appA)}/${doomed.body.id}`,
      token: ana,
    });
    expect(del.status).toBe(204);
    expect(
      (await t.call({ method: "GET", url: `${items(appA)}/${doomed.body.id}`, token: ana })).status,
    ).toBe(404);
    const row = await t.db.query<{ deleted: boolean }>(
      "SELECT deleted FROM trellis.directory_items WHERE id = $1",
      [doomed.body.id],
    );
    expect(row.rows).toEqual([{ deleted: true }]);
    const undo = await asGateway(t.db, { app: appA, sub: "ana", scopes: "read update" }, (q) =>
      q
        .query("SELECT set_config('trellis.write_action', 'update', true)")
        .then(() =>
          q.query("UPDATE trellis.directory_items SET deleted = false WHERE id = $1", [
            doomed.body.id,
          ]),
        )
        .then(
          () => "no error",
          (e) => sqlState(e),
        ),
    );
    expect(undo).toBe("42501");
  });

  it("app B never sees app A's items, in HTTP and in SQL", async () => {
    const other = await issueToken(t, appB, "ana", ["read:all"]);
    expect((await t.call({ method: "GET", url: items(appB), token: other })).body.items).toEqual(
      [],
    );
    expect((await t.call({ method: "GET", url: items(appA), token: other })).status).toBe(403);
    const sql = await asGateway(t.db, { app: appB, sub: "ana", scopes: "read:all" }, (q) =>
      q.query("SELECT * FROM trellis.directory_items"),
    );
    expect(sql.rows).toEqual([]);
  });

  it.each([
    ["a missing kind", { attrs: { name: "x" } }, 400, "invalid_request"],
    ["a bad kind", { kind: "Big Room", attrs: { name: "x" } }, 400, "invalid_request"],
    ["attrs that are not an object", { kind: "room", attrs: [1] }, 400, "invalid_request"],
    [
      "an extra field",
      { kind: "room", attrs: { name: "x" }, owner_id: "ben" },
      400,
      "invalid_request",
    ],
    [
      "an oversized value",
      { kind: "room", attrs: { name: "x".repeat(101) } },
      422,
      "payload_invalid",
    ],
    [
      "a missing required attribute",
      { kind: "room", attrs: { color: "x" } },
      422,
      "payload_invalid",
    ],
  ])("refuses %s with a precise code, audited, nothing stored", async (_n, body, status, code) => {
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM trellis.directory_items WHERE app_id = $1",
          [appA],
        )
      ).rows[0]?.n;
    const before = await count();
    const res = await add(appA, ana, body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "item.create",
      outcome: "denied",
      error_code: code,
    });
    expect(await count()).toBe(before);
  });

  it("another app's item id is not found; a token without update cannot PATCH", async () => {
    const bTok = await issueToken(t, appB, "ana", ["create", "read", "update"]);
    const bItem = await add(appB, bTok, { kind: "room", attrs: { name: "B" } });
    const cross = await t.call({
      method: "GET",
      url: `${items(appA)}/${bItem.body.id}`,
      token: ana,
    });
    expect(cross.status).toBe(404);
    const reader = await issueToken(t, appA, "ana", ["read"]);
    const mine = await add(appA, ana, { kind: "room", attrs: { name: "Mine" } });
    const res = await t.call({
      method: "PATCH",
      url: `${items(appA)}/${mine.body.id}`,
      token: reader,
      body: { attrs: { color: "x" } },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("scope_missing");
  });
});
