import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { asGateway, auditFor, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

/** `2030-03-<day>T<hh>:00:00Z`: each test books on its own day, so none sees another's bookings. */
const at = (day: number, hour: number) =>
  `2030-03-${String(day).padStart(2, "0")}T${String(hour).padStart(2, "0")}:00:00.000Z`;

/** The bookings template through the gateway, on PGlite and PostgreSQL. */
describe.each(DATASTORES)("bookings on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  let ana: string;
  let ben: string;
  let boss: string;
  const bookings = (app: string) => `/api/v1/apps/${app}/bookings`;
  const createBookings = async (name: string) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name,
        template: "bookings",
        owners: ["o@example.org"],
        payload_schema: { type: "object" },
      },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const book = (app: string, token: string, body: Record<string, unknown>) =>
    t.call({ method: "POST", url: bookings(app), token, body });
  const slot = (resource: string, day: number, from: number, to: number) => ({
    resource,
    starts_at: at(day, from),
    ends_at: at(day, to),
  });
  const live = async (app: string, resource: string) =>
    (
      await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.bookings WHERE app_id = $1 AND resource = $2 AND NOT cancelled",
        [app, resource],
      )
    ).rows[0]?.n;

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createBookings("Rooms");
    appB = await createBookings("Other rooms");
    ana = await issueToken(t, appA, "ana", ["create", "read", "cancel"]);
    ben = await issueToken(t, appA, "ben", ["create", "read", "cancel"]);
    boss = await issueToken(t, appA, "boss", ["read:all"]);
  });
  afterAll(() => t?.close());

  it("books a slot (times kept in UTC), reads it back; audited with its policy", async () => {
    const res = await book(appA, ana, {
      resource: "Room 1",
      starts_at: "2030-03-01T11:00:00+01:00",
      ends_at: "2030-03-01T12:30:00+01:00",
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      app_id: appA,
      resource: "Room 1",
      owner_id: "ana",
      starts_at: "2030-03-01T10:00:00.000Z",
      ends_at: "2030-03-01T11:30:00.000Z",
      labels: {},
      created_at: t.clock.now().toISOString(),
    });
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "booking.create",
      outcome: "allowed",
      resource_id: res.body.id,
      policy_ids: ["owner-write.create"],
    });
    const got = await t.call({
      method: "GET",
      url: `${bookings(appA)}/${res.body.id}`,
      token: ana,
    });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
    expect((await auditFor(t.db, got.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "booking.get",
      resource_id: res.body.id,
    });
  });

  it("ten requests at once for overlapping slots: exactly one 201, nine 409 booking_conflict (each audited)", async () => {
    const subjects = ["p0", "p1", "p2", "p3", "p4"];
    const tokens = await Promise.all(
      subjects.map((s) => issueToken(t, appA, s, ["create", "read"])),
    );
    // All overlap 10:00–11:00 on day 2, each shifted a little, from five subjects.
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        book(appA, tokens[i % 5] as string, {
          resource: "Hot room",
          starts_at: `2030-03-02T10:${String(i * 3).padStart(2, "0")}:00Z`,
          ends_at: `2030-03-02T11:${String(i * 3).padStart(2, "0")}:00Z`,
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) {
      expect(r.body.error.code).toBe("booking_conflict");
      expect((await auditFor(t.db, r.body.error.request_id))[0]).toMatchObject({
        action: "booking.create",
        outcome: "denied",
        error_code: "booking_conflict",
        policy_ids: ["owner-write.create"],
      });
    }
    expect(await live(appA, "Hot room")).toBe(1);
  });

  it("adjacent slots ([10,11) then [11,12)) both book; the same slot of another resource too", async () => {
    expect((await book(appA, ana, slot("Room 2", 3, 10, 11))).status).toBe(201);
    expect((await book(appA, ben, slot("Room 2", 3, 11, 12))).status).toBe(201);
    expect((await book(appA, ben, slot("Room 3", 3, 10, 11))).status).toBe(201);
    const overlap = await book(appA, ben, slot("Room 2", 3, 9, 12));
    expect(overlap.status).toBe(409);
    expect(overlap.body.error.code).toBe("booking_conflict");
    expect(await live(appA, "Room 2")).toBe(2);
  });

  it("the database itself refuses an overlap, even from the table's owner", async () => {
    const made = await book(appA, ana, slot("Room 4", 4, 10, 11));
    expect(made.status).toBe(201);
    const direct = await t.db
      .query(
        `INSERT INTO trellis.bookings (id, app_id, owner_id, resource, period, created_at)
         VALUES (gen_random_uuid(), $1, 'x', 'Room 4', tstzrange($2, $3, '[)'), now())`,
        [appA, at(4, 10), at(4, 12)],
      )
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(direct).toBe("23P01");
  });

  it("a cancelled booking is gone from reads, frees its slot, and stays in the table", async () => {
    const first = await book(appA, ana, slot("Room 5", 5, 10, 11));
    expect((await book(appA, ben, slot("Room 5", 5, 10, 11))).status).toBe(409);
    const del = await t.call({
      method: "DELETE",
      url: `${bookings(appA)}/${first.body.id}`,
      token: ana,
    });
    expect(del.status).toBe(204);
    expect((await auditFor(t.db, del.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "booking.cancel",
      outcome: "allowed",
      resource_id: first.body.id,
      policy_ids: ["owner-read", "owner-write.cancel"],
    });
    expect(
      (await t.call({ method: "GET", url: `${bookings(appA)}/${first.body.id}`, token: ana }))
        .status,
    ).toBe(404);
    expect(
      (await t.call({ method: "DELETE", url: `${bookings(appA)}/${first.body.id}`, token: ana }))
        .status,
    ).toBe(404);
    const again = await book(appA, ben, slot("Room 5", 5, 10, 11));
    expect(again.status).toBe(201);
    const rows = await t.db.query<{ owner_id: string; cancelled: boolean }>(
      "SELECT owner_id, cancelled FROM trellis.bookings WHERE app_id = $1 AND resource = 'Room 5' ORDER BY id",
      [appA],
    );
    expect(rows.rows).toEqual([
      { owner_id: "ana", cancelled: true },
      { owner_id: "ben", cancelled: false },
    ]);
  });

  it("lists by resource and by time overlap, page by page; owners see their own, read:all all", async () => {
    for (const [token, hour] of [
      [ana, 8],
      [ben, 9],
      [ana, 10],
      [ana, 13],
    ] as const) {
      expect((await book(appA, token, slot("Desk 9", 6, hour, hour + 1))).status).toBe(201);
    }
    const list = (token: string, query: string) =>
      t.call({ method: "GET", url: `${bookings(appA)}?${query}`, token });
    const startsOf = (res: { body: { items: Array<{ starts_at: string }> } }) =>
      res.body.items.map((b) => b.starts_at).sort();
    const everything = await list(boss, "resource=Desk%209");
    expect(startsOf(everything)).toEqual([at(6, 8), at(6, 9), at(6, 10), at(6, 13)]);
    expect((await auditFor(t.db, everything.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "booking.list",
      outcome: "allowed",
    });
    expect(startsOf(await list(ana, "resource=Desk%209"))).toEqual([
      at(6, 8),
      at(6, 10),
      at(6, 13),
    ]);
    // [09:30, 11:00) overlaps 09–10 and 10–11, not 08–09 nor 13–14.
    expect(
      startsOf(await list(boss, `resource=Desk%209&from=2030-03-06T09:30:00Z&to=${at(6, 11)}`)),
    ).toEqual([at(6, 9), at(6, 10)]);
    // An open end: everything from 10:00 on (09–10 ends where it begins, so it is out).
    expect(startsOf(await list(boss, `resource=Desk%209&from=${at(6, 10)}`))).toEqual([
      at(6, 10),
      at(6, 13),
    ]);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await list(
        boss,
        `resource=Desk%209&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((b: { id: string }) => b.id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(2);
    expect(new Set(seen).size).toBe(4);
    expect(seen).toEqual([...seen].sort().reverse()); // newest first
  });

  it("app B never sees, cancels or blocks app A's bookings, even with A's ids; in HTTP and in SQL", async () => {
    const mine = await book(appA, ana, slot("Shared name", 7, 10, 11));
    expect(mine.status).toBe(201);
    const bAll = await issueToken(t, appB, "ana", ["create", "read", "read:all", "cancel"]);
    // The same resource name and slot in another app is another resource.
    expect((await book(appB, bAll, slot("Shared name", 7, 10, 11))).status).toBe(201);
    const listed = await t.call({ method: "GET", url: bookings(appB), token: bAll });
    expect(listed.body.items.map((b: { app_id: string }) => b.app_id)).toEqual([appB]);
    expect(
      (await t.call({ method: "GET", url: `${bookings(appB)}/${mine.body.id}`, token: bAll }))
        .status,
    ).toBe(404);
    const cancel = await t.call({
      method: "DELETE",
      url: `${bookings(appB)}/${mine.body.id}`,
      token: bAll,
    });
    expect(cancel.status).toBe(404);
    expect(
      (await t.call({ method: "GET", url: `${bookings(appA)}/${mine.body.id}`, token: bAll }))
        .status,
    ).toBe(403); // B's token on A's URL
    expect(
      (await t.call({ method: "GET", url: `${bookings(appA)}/${mine.body.id}`, token: ana }))
        .status,
    ).toBe(200);
    const sql = await asGateway(
      t.db,
      { app: appB, sub: "ana", scopes: "read:all cancel" },
      async (q) => ({
        seen: (await q.query("SELECT * FROM trellis.bookings WHERE app_id = $1", [appA])).rows,
        cancelled: (
          await q.query("UPDATE trellis.bookings SET cancelled = true WHERE id = $1", [
            mine.body.id,
          ])
        ).rowCount,
      }),
    );
    expect(sql).toEqual({ seen: [], cancelled: 0 });
  });

  it("under the default blocks nobody cancels someone else's booking", async () => {
    const anas = await book(appA, ana, slot("Room 8", 8, 10, 11));
    const byBen = await t.call({
      method: "DELETE",
      url: `${bookings(appA)}/${anas.body.id}`,
      token: ben,
    });
    expect(byBen.status).toBe(404); // ben cannot even see it
    const bossCanceller = await issueToken(t, appA, "boss", ["read:all", "cancel"]);
    const byBoss = await t.call({
      method: "DELETE",
      url: `${bookings(appA)}/${anas.body.id}`,
      token: bossCanceller,
    });
    expect(byBoss.status).toBe(403);
    expect(byBoss.body.error.code).toBe("policy_denied");
    expect((await auditFor(t.db, byBoss.body.error.request_id))[0]).toMatchObject({
      action: "booking.cancel",
      outcome: "denied",
      error_code: "policy_denied",
    });
    // And in the database: RLS lets boss see the row but not change it.
    const sql = await asGateway(
      t.db,
      { app: appA, sub: "boss", scopes: "read:all cancel" },
      async (q) => ({
        seen: (await q.query("SELECT id FROM trellis.bookings WHERE id = $1", [anas.body.id])).rows
          .length,
        cancelled: (
          await q.query("UPDATE trellis.bookings SET cancelled = true WHERE id = $1", [
            anas.body.id,
          ])
        ).rowCount,
      }),
    );
    expect(sql).toEqual({ seen: 1, cancelled: 0 });
    expect(await live(appA, "Room 8")).toBe(1);
  });

  it("a booking's fields cannot change, nor a cancellation be undone: the database refuses", async () => {
    const b = await book(appA, ana, slot("Room 10", 10, 10, 11));
    const asAna = (sql: string) =>
      asGateway(t.db, { app: appA, sub: "ana", scopes: "read cancel" }, (q) =>
        q.query(sql, [b.body.id]).then(
          () => "no error",
          (e) => sqlState(e),
        ),
      );
    expect(
      await asAna(
        "UPDATE trellis.bookings SET period = tstzrange('2030-03-10T10:00Z', '2030-03-10T18:00Z', '[)') WHERE id = $1",
      ),
    ).toBe("42501");
    expect(await asAna("UPDATE trellis.bookings SET owner_id = 'ben' WHERE id = $1")).toBe("42501");
    expect(await asAna("DELETE FROM trellis.bookings WHERE id = $1")).toBe("42501");
    // The guard trigger holds for every role, the table's owner included.
    const owner = await t.db
      .query("UPDATE trellis.bookings SET resource = 'Room 11' WHERE id = $1", [b.body.id])
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(owner).toBe("42501");
    await t.call({ method: "DELETE", url: `${bookings(appA)}/${b.body.id}`, token: ana });
    expect(await asAna("UPDATE trellis.bookings SET cancelled = false WHERE id = $1")).toBe(
      "42501",
    );
    const row = await t.db.query<{ resource: string; cancelled: boolean }>(
      "SELECT resource, cancelled FROM trellis.bookings WHERE id = $1",
      [b.body.id],
    );
    expect(row.rows).toEqual([{ resource: "Room 10", cancelled: true }]);
  });

  it.each([
    ["a missing ends_at", { resource: "R", starts_at: at(12, 10) }],
    ["a starts_at that is a number", { ...slot("R", 12, 10, 11), starts_at: 1_900_000_000 }],
    ["a resource that is not a string", { ...slot("R", 12, 10, 11), resource: ["R"] }],
    ["an extra field", { ...slot("R", 12, 10, 11), owner_id: "ben" }],
    ["an oversized resource", { ...slot("R", 12, 10, 11), resource: "R".repeat(101) }],
    ["a resource with a newline", { ...slot("R", 12, 10, 11), resource: "Room\n1" }],
    ["an end before the start", slot("R", 12, 11, 10)],
    ["an end equal to the start", slot("R", 12, 10, 10)],
    ["a booking over 31 days", { ...slot("R", 1, 0, 0), ends_at: "2030-04-01T00:00:00.001Z" }],
    ["a time without an offset", { ...slot("R", 12, 10, 11), starts_at: "2030-03-12T10:00:00" }],
    ["a day that does not exist", { ...slot("R", 12, 10, 11), starts_at: "2030-02-30T10:00:00Z" }],
    ["a time that is not a date", { ...slot("R", 12, 10, 11), ends_at: "tomorrow" }],
    [
      "a time before 1970",
      { resource: "R", starts_at: "1969-01-01T10:00:00Z", ends_at: "1969-01-01T11:00:00Z" },
    ],
  ])("refuses %s with invalid_request, audited, nothing stored", async (_n, body) => {
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM trellis.bookings WHERE app_id = $1",
          [appA],
        )
      ).rows[0]?.n;
    const before = await count();
    const res = await book(appA, ana, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(res.body.error.issues.length).toBeGreaterThan(0);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "booking.create",
      outcome: "denied",
      error_code: "invalid_request",
    });
    expect(await count()).toBe(before);
  });

  it.each([
    ["to before from", `from=${at(13, 11)}&to=${at(13, 10)}`, "invalid_request"],
    ["an unknown filter", "room=1", "invalid_request"],
    ["a forged cursor", "cursor=bm90LWEtY3Vyc29y", "invalid_request"],
    ["a from without offset", "from=2030-03-13T10:00:00", "invalid_request"],
  ])("a list with %s is refused with %s, audited", async (_n, query, code) => {
    const res = await t.call({ method: "GET", url: `${bookings(appA)}?${query}`, token: ana });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "booking.list",
      outcome: "denied",
      error_code: code,
    });
  });

  it("needs the create scope to book and the cancel scope to cancel; other templates' apps have no bookings", async () => {
    const reader = await issueToken(t, appA, "ana", ["read"]);
    const noCreate = await book(appA, reader, slot("Room 14", 14, 10, 11));
    expect(noCreate.status).toBe(403);
    expect(noCreate.body.error.code).toBe("scope_missing");
    const made = await book(appA, ana, slot("Room 14", 14, 10, 11));
    const noCancel = await t.call({
      method: "DELETE",
      url: `${bookings(appA)}/${made.body.id}`,
      token: reader,
    });
    expect(noCancel.status).toBe(403);
    expect(noCancel.body.error.code).toBe("scope_missing");
    const dir = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name: "Dir",
        template: "directory",
        owners: ["o@example.org"],
        payload_schema: { type: "object" },
      },
    });
    const dirToken = await issueToken(t, dir.body.id, "ana", ["create", "read"]);
    const wrong = await book(dir.body.id, dirToken, slot("Room 14", 14, 12, 13));
    expect(wrong.status).toBe(404);
    expect(wrong.body.error.code).toBe("resource_not_in_template");
  });
});
