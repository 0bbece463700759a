import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  createApp,
  DATASTORES,
  issueToken,
  startTestApp,
  type TestApp,
} from "./harness";

describe.each(DATASTORES)("audit query and export on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  let middle: string;
  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createApp(t, "A");
    t.clock.advance(3600);
    middle = t.clock.now().toISOString();
    appB = await createApp(t, '=HYPERLINK("http://evil")');
    t.clock.advance(3600);
    await t.call({ method: "GET", url: `/admin/v1/apps/${appA}` });
  });
  afterAll(() => t?.close());

  const list = async (q: string) =>
    (await t.call({ method: "GET", url: `/admin/v1/audit?${q}` })).body;

  it("filters by resource and by time range", async () => {
    const byResource = await list(`resource_type=app&resource_id=${appA}`);
    expect(byResource.items.map((e: { action: string }) => e.action).sort()).toEqual([
      "app.create",
      "app.get",
    ]);
    const before = await list(`to=${encodeURIComponent(middle)}&action=app.create`);
    expect(before.items.map((e: { resource_id: string }) => e.resource_id)).toEqual([appA]);
    const after = await list(`from=${encodeURIComponent(middle)}&action=app.create`);
    expect(after.items.map((e: { resource_id: string }) => e.resource_id)).toEqual([appB]);
    const bad = await t.call({ method: "GET", url: "/admin/v1/audit?from=yesterday" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
  });

  const exportOf = (q: string) =>
    t.app.inject({
      method: "GET",
      url: `/admin/v1/audit/export?${q}`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });

  it("exports the matching events as NDJSON, oldest first, the same events the list gives", async () => {
    const res = await exportOf(`app=${appA}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("application/x-ndjson");
    const lines = res.body
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const listed = (await list(`app=${appA}&limit=200`)).items.reverse();
    expect(lines).toEqual(listed);
  });

  it("exports CSV with a header, quoted cells, and formulas neutralized", async () => {
    const evil = await issueToken(t, appA, '=HYPERLINK("http://x","y")', ["read"]);
    await t.call({ method: "GET", url: `/api/v1/apps/${appA}/submissions`, token: evil });
    const res = await exportOf(
      `format=csv&actor=${encodeURIComponent('=HYPERLINK("http://x","y")')}`,
    );
    expect(res.headers["content-type"]).toContain("text/csv");
    const rows = res.body.trimEnd().split("\n");
    expect(rows[0]).toBe(
      "seq,event_id,timestamp,actor_id,actor_role,action,resource_type,resource_id,app_id,token_id,policy_ids,outcome,error_code,request_id,diff",
    );
    expect(rows).toHaveLength(2);
    // The actor cell: prefixed with ' and quoted (it holds quotes and a comma), never a formula.
    expect(rows[1]).toContain(`,"'=HYPERLINK(""http://x"",""y"")",app_user,submission.list,`);
  });

  it("an export is itself audited, with its filter", async () => {
    const res = await exportOf(`format=csv&app=${appB}`);
    const { rows } = await t.db.query<{ diff: unknown }>(
      "SELECT diff FROM trellis.audit_events WHERE request_id = $1",
      [res.headers["x-request-id"]],
    );
    expect(rows[0]?.diff).toEqual({ format: "csv", filter: { app: appB } });
    const bad = await exportOf("format=xlsx");
    expect(bad.statusCode).toBe(400);
  });
});
