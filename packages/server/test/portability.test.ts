import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  auditFor,
  DATASTORES,
  describeOnPostgres,
  issueToken,
  startTestApp,
  type TestApp,
} from "./harness";

const SCHEMA = {
  type: "object",
  properties: { name: { type: "string", maxLength: 100 }, n: { type: "integer" } },
};

type Line = { type: string; table?: string; row?: Record<string, unknown>; [k: string]: unknown };
const parse = (ndjson: string): Line[] =>
  ndjson
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** One app of each template with a little data in it; returns their ids. */
async function seed(t: TestApp): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  const create = async (template: string) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: { name: template, template, owners: ["o@example.org"], payload_schema: SCHEMA },
    });
    expect(res.status).toBe(201);
    ids[template] = res.body.id;
    return res.body.id as string;
  };
  const post = async (url: string, token: string, body: unknown, method = "POST") => {
    const res = await t.call({ method: method as "POST", url, token, body });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    return res.body;
  };
  const dir = await create("directory");
  const dTok = await issueToken(t, dir, "ana", ["create", "read", "update", "delete"]);
  const item = await post(`/api/v1/apps/${dir}/items`, dTok, {
    kind: "room",
    attrs: { name: "Blue", n: 8 },
  });
  await post(`/api/v1/apps/${dir}/items`, dTok, { kind: "desk", attrs: { name: "D1" } });
  await post(`/api/v1/apps/${dir}/items/${item.id}`, dTok, { attrs: { n: 9 } }, "PATCH");
  const log = await create("event-log");
  const lTok = await issueToken(t, log, "ana", ["append", "read"]);
  for (let i = 1; i <= 3; i++)
    await post(`/api/v1/apps/${log}/events`, lTok, { type: "tick", data: { n: i } });
  const form = await create("form-intake");
  const fTok = await issueToken(t, form, "ana", ["create", "read"]);
  await post(`/api/v1/apps/${form}/submissions`, fTok, { payload: { name: "hello" } });
  const cache = await create("ttl-cache");
  const cTok = await issueToken(t, cache, "ana", ["put", "read"]);
  await post(
    `/api/v1/apps/${cache}/entries/k1`,
    cTok,
    { value: { name: "v" }, ttl_seconds: 600 },
    "PUT",
  );
  const queue = await create("approval-queue");
  const qTok = await issueToken(t, queue, "ana", ["create", "read"]);
  const rTok = await issueToken(t, queue, "rita", ["read", "review"]);
  const r = await post(`/api/v1/apps/${queue}/requests`, qTok, {
    payload: { name: "Laptop" },
    assigned_reviewer: "rita",
  });
  await post(`/api/v1/apps/${queue}/requests/${r.id}/transitions`, rTok, { to: "reviewing" });
  const book = await create("bookings");
  const bTok = await issueToken(t, book, "ana", ["create", "read", "cancel"]);
  const slot = (h: number) => ({
    resource: "Room 1",
    starts_at: `2026-12-01T${String(h).padStart(2, "0")}:00:00Z`,
    ends_at: `2026-12-01T${String(h + 1).padStart(2, "0")}:00:00+00:00`,
  });
  const b1 = await post(`/api/v1/apps/${book}/bookings`, bTok, slot(9));
  await post(`/api/v1/apps/${book}/bookings`, bTok, slot(10));
  await t.call({ method: "DELETE", url: `/api/v1/apps/${book}/bookings/${b1.id}`, token: bTok });
  return ids;
}

const exportOf = async (t: TestApp, app: string) => {
  const res = await t.app.inject({
    method: "GET",
    url: `/admin/v1/apps/${app}/export`,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return res;
};
const importInto = (t: TestApp, body: string) =>
  t.call({
    method: "POST",
    url: "/admin/v1/apps/import",
    payload: body,
    headers: { "content-type": "application/x-ndjson" },
  });

describe.each(DATASTORES)("export and import on %s", (kind) => {
  let src: TestApp;
  let dst: TestApp;
  let ids: Record<string, string>;
  beforeAll(async () => {
    src = await startTestApp(kind);
    dst = await startTestApp(kind);
    ids = await seed(src);
  });
  afterAll(async () => {
    await src?.close();
    await dst?.close();
  });

  it("a template export carries its DDL with checksums, JSON Schemas, blocks and retention", async () => {
    const res = await src.call({ method: "GET", url: "/admin/v1/templates/approval-queue/export" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      format: "trellis.template-export/1",
      id: "approval-queue",
      version: 1,
      retention_days_default: 1095,
      manifest_schema: { title: "Trellis template manifest" },
    });
    const ddl = res.body.ddl as Array<{ name: string; sha256: string; sql: string }>;
    expect(ddl.map((d) => d.name)).toEqual([
      "0001_requests.sql",
      "0002_control_plane.sql",
      "0003_gateway_ctx.sql",
    ]);
    for (const d of ddl) expect(d.sha256).toBe(sha(d.sql));
    const { rows } = await src.db.query<{ checksum: string }>(
      "SELECT checksum FROM trellis.schema_migrations WHERE scope = 'template:approval-queue' ORDER BY name",
    );
    expect(rows.map((r) => r.checksum)).toEqual(ddl.map((d) => d.sha256));
    const blocks = res.body.policy_blocks as Array<{
      id: string;
      default: boolean;
      cedar: Record<string, string>;
    }>;
    expect(blocks.filter((b) => b.default).map((b) => b.id)).toEqual([
      "owner-read",
      "owner-write",
      "assigned-reviewer",
    ]);
    expect(Object.keys(blocks.find((b) => b.id === "assigned-reviewer")?.cedar ?? {})).toContain(
      "assigned-reviewer.review",
    );
    expect(res.body.cedar_schema).toContain('"review"');
    expect((await src.call({ method: "GET", url: "/admin/v1/templates/nope/export" })).status).toBe(
      404,
    );
  });

  it("every template's app exports as NDJSON (header, rows, end with SHA-256) and imports whole", async () => {
    for (const [template, app] of Object.entries(ids)) {
      const res = await exportOf(src, app);
      expect(res.statusCode, template).toBe(200);
      expect(res.headers["content-type"]).toContain("application/x-ndjson");
      const lines = parse(res.body);
      const end = lines.at(-1) as Line;
      expect(lines[0]).toMatchObject({
        type: "header",
        format: "trellis.app-export/1",
        app: { id: app, template },
      });
      expect(end.type).toBe("end");
      const body = res.body.slice(0, res.body.lastIndexOf("\n", res.body.length - 2) + 1);
      expect(end.sha256).toBe(sha(body));
      const rowLines = res.body.split("\n").filter((l) => l.startsWith('{"type":"row"'));
      expect(end.data_sha256).toBe(sha(rowLines.map((l) => `${l}\n`).join("")));
      const rows = lines.filter((l) => l.type === "row");
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.row?.app_id === app)).toBe(true);

      const imported = await importInto(dst, res.body);
      expect(imported.status, JSON.stringify(imported.body)).toBe(201);
      expect(imported.body).toMatchObject({ app_id: app, template, sha256: end.sha256 });
      expect(imported.body.rows).toEqual(end.rows);
      // The same data on the other side: its export has the same data hash.
      const again = parse((await exportOf(dst, app)).body).at(-1) as Line;
      expect(again.data_sha256, template).toBe(end.data_sha256);
      expect((await auditFor(dst.db, imported.headers["x-request-id"] as string))[0]).toMatchObject(
        {
          action: "app.import",
          resource_id: app,
          diff: { sha256: end.sha256, rows: end.rows },
        },
      );
    }
  });

  it("an imported app works through the gateway: events continue their numbering", async () => {
    const log = ids["event-log"] as string;
    const tok = await issueToken(dst, log, "ana", ["append", "read"]);
    const next = await dst.call({
      method: "POST",
      url: `/api/v1/apps/${log}/events`,
      token: tok,
      body: { type: "tick", data: { n: 4 } },
    });
    expect(next.body.seq).toBe(4);
    const queue = ids["approval-queue"] as string;
    const rita = await issueToken(dst, queue, "rita", ["read", "review"]);
    const list = await dst.call({
      method: "GET",
      url: `/api/v1/apps/${queue}/requests`,
      token: rita,
    });
    expect(list.body.items.map((r: { state: string }) => r.state)).toEqual(["reviewing"]);
  });

  it("an imported bookings app still refuses double booking; the cancelled slot is free", async () => {
    const book = ids.bookings as string;
    const tok = await issueToken(dst, book, "ben", ["create"]);
    const at = (h: number) => ({
      resource: "Room 1",
      starts_at: `2026-12-01T${String(h).padStart(2, "0")}:00:00Z`,
      ends_at: `2026-12-01T${String(h + 1).padStart(2, "0")}:00:00Z`,
    });
    const taken = await dst.call({
      method: "POST",
      url: `/api/v1/apps/${book}/bookings`,
      token: tok,
      body: at(10),
    });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe("booking_conflict");
    const freed = await dst.call({
      method: "POST",
      url: `/api/v1/apps/${book}/bookings`,
      token: tok,
      body: at(9),
    });
    expect(freed.status).toBe(201);
  });

  it("the export is audited with its hashes", async () => {
    const res = await exportOf(src, ids.directory as string);
    const end = parse(res.body).at(-1) as Line;
    await new Promise((r) => setTimeout(r, 50)); // the event is written once the stream ended
    const events = await auditFor(src.db, res.headers["x-request-id"] as string);
    expect(events[0]).toMatchObject({
      action: "app.export",
      outcome: "allowed",
      diff: { sha256: end.sha256 },
    });
  });

  describe("refuses a bad import with a precise code, and imports nothing", () => {
    let good: string;
    let app: string;
    beforeAll(async () => {
      app = ids.directory as string;
      good = (await exportOf(src, app)).body;
    });
    const nothingOf = async (t: TestApp, id: string) => {
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT (SELECT count(*) FROM trellis.apps WHERE id = $1)::int + (SELECT count(*) FROM trellis.directory_items WHERE app_id = $1)::int AS n",
        [id],
      );
      return rows[0]?.n;
    };

    it("a changed row: import_hash_mismatch", async () => {
      const fresh = await startTestApp(kind);
      try {
        const tampered = good.replace('"Blue"', '"Gold"');
        expect(tampered).not.toBe(good);
        const res = await importInto(fresh, tampered);
        expect(res.status).toBe(422);
        expect(res.body.error.code).toBe("import_hash_mismatch");
        expect(await nothingOf(fresh, app)).toBe(0);
        expect((await auditFor(fresh.db, res.body.error.request_id))[0]).toMatchObject({
          action: "app.import",
          outcome: "denied",
          error_code: "import_hash_mismatch",
        });
        // cut short: no end line
        const cut = good.split("\n").slice(0, -2).join("\n");
        const res2 = await importInto(fresh, cut);
        expect(res2.body.error.code).toBe("import_hash_mismatch");
        // a dropped row, with the end line kept
        const lines = good.trimEnd().split("\n");
        const dropped = [lines[0], ...lines.slice(2)].join("\n");
        expect((await importInto(fresh, dropped)).body.error.code).toBe("import_hash_mismatch");
        expect(await nothingOf(fresh, app)).toBe(0);
      } finally {
        await fresh.close();
      }
    });

    it("an app that exists: app_exists; another app's row or a foreign table: import_invalid", async () => {
      const fresh = await startTestApp(kind);
      const other = await startTestApp(kind);
      try {
        expect((await importInto(other, good)).status).toBe(201);
        const twice = await importInto(other, good);
        expect(twice.status).toBe(409);
        expect(twice.body.error.code).toBe("app_exists");
        const lines = good.trimEnd().split("\n");
        const foreign = lines.map((l, i) =>
          i === 1 ? l.replace(app, "app_0000000000000000000000000a") : l,
        );
        const res = await importInto(fresh, foreign.join("\n"));
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({
          code: "import_invalid",
          issues: [{ path: "/line/2" }],
        });
        const table = lines.map((l, i) =>
          i === 1 ? l.replace("trellis.directory_items", "trellis.admin_credentials") : l,
        );
        expect((await importInto(fresh, table.join("\n"))).body.error.code).toBe("import_invalid");
        expect((await importInto(fresh, "not json\n")).body.error.code).toBe("import_invalid");
        expect((await importInto(fresh, "")).body.error.code).toBe("import_invalid");
        const wrongType = lines.map((l, i) =>
          i === 1 ? l.replace(/"created_at": ?"[^"]+"/, '"created_at": "not a time"') : l,
        );
        expect(wrongType[1]).toContain("not a time");
        const typed = await importInto(fresh, wrongType.join("\n"));
        expect(typed.status).toBe(400);
        expect(typed.body.error.code).toBe("import_invalid");
        const json = await fresh.call({
          method: "POST",
          url: "/admin/v1/apps/import",
          body: { a: 1 },
        });
        expect(json.status).toBe(415);
        expect(await nothingOf(fresh, app)).toBe(0);
      } finally {
        await fresh.close();
        await other.close();
      }
    });
  });
});

/** The acceptance: an export from a PGlite instance imports into a PostgreSQL instance. */
describeOnPostgres("export from PGlite, import into PostgreSQL", () => {
  it("every template's data and hash match on the other datastore", async () => {
    const lite = await startTestApp("pglite");
    const pg = await startTestApp("postgres");
    try {
      const ids = await seed(lite);
      for (const [template, app] of Object.entries(ids)) {
        const exported = (await exportOf(lite, app)).body;
        const end = parse(exported).at(-1) as Line;
        const res = await importInto(pg, exported);
        expect(res.status, `${template}: ${JSON.stringify(res.body)}`).toBe(201);
        expect(res.body.sha256).toBe(end.sha256);
        const back = parse((await exportOf(pg, app)).body);
        expect((back.at(-1) as Line).data_sha256, template).toBe(end.data_sha256);
        expect(back.filter((l) => l.type === "row")).toEqual(
          parse(exported).filter((l) => l.type === "row"),
        );
      }
    } finally {
      await lite.close();
      await pg.close();
    }
  });
});

/**
 * A deployment whose database user is not a superuser (as the README recommends): row-level
 * security holds for the owner too, so export, import and upgrades reach an app's rows only
 * through the control plane's policies. Without them an export was silently empty.
 */
describeOnPostgres("export and import as a non-superuser owner", () => {
  it("exports every row, imports them into another instance, and the gateway still isolates", async () => {
    const a = await startTestApp("postgres", {}, { dbOwner: "trellis_owner_test" });
    const b = await startTestApp("postgres", {}, { dbOwner: "trellis_owner_test" });
    try {
      const { rows: who } = await a.db.query<{ su: boolean }>(
        "SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user",
      );
      expect(who[0]?.su).toBe(false);
      const ids = await seed(a);
      for (const [template, app] of Object.entries(ids)) {
        const exported = (await exportOf(a, app)).body;
        const end = parse(exported).at(-1) as Line;
        const rows = Object.values(end.rows as Record<string, number>).reduce((x, y) => x + y, 0);
        expect(rows, template).toBeGreaterThan(0);
        const res = await importInto(b, exported);
        expect(res.status, `${template}: ${JSON.stringify(res.body)}`).toBe(201);
        const back = parse((await exportOf(b, app)).body).at(-1) as Line;
        expect(back.data_sha256, template).toBe(end.data_sha256);
      }
      // Outside those transactions the owner still sees nothing of the apps' data.
      const { rows } = await a.db.query("SELECT * FROM trellis.directory_items");
      expect(rows).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
