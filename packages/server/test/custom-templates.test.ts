import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import {
  auditFor,
  DATASTORES,
  describeOnPostgres,
  issueToken,
  startSecondServer,
  startTestApp,
  type TestApp,
} from "./harness";

const ASSET_SCHEMA = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", maxLength: 100 },
    serial: { type: "string", maxLength: 40 },
  },
};
const assetRegister = (extra: Record<string, unknown> = {}) => ({
  id: "asset-register",
  base: "directory",
  title: "Asset register",
  description: "Laptops, phones and keys handed out to people, with who holds each.",
  retention_days_default: 400,
  default_policy_blocks: ["owner-read", "owner-write", "app-read"],
  payload_schema: ASSET_SCHEMA,
  ...extra,
});

describe.each(DATASTORES)("custom templates and stewards on %s", (kind) => {
  let t: TestApp;
  let ana: { id: string; token: string }; // admin
  let sam: { id: string; token: string }; // steward
  let pat: { id: string; token: string }; // admin and steward
  const as = (
    who: { token: string } | undefined,
    method: "GET" | "POST" | "DELETE",
    url: string,
    body?: unknown,
  ) => t.call({ method, url, body, ...(who ? { token: who.token } : {}) });
  const person = async (name: string, roles: string[]) => {
    const res = await as(undefined, "POST", "/admin/v1/admins", { name, roles });
    expect(res.status).toBe(201);
    expect(res.body.token).toMatch(/^trl_admin/);
    return { id: res.body.id as string, token: res.body.token as string };
  };

  beforeAll(async () => {
    t = await startTestApp(kind);
    ana = await person("Ana (platform)", ["admin"]);
    sam = await person("Sam (data steward)", ["steward"]);
    pat = await person("Pat", ["admin", "steward"]);
  });
  afterAll(() => t?.close());

  it("people get their own credentials, stored as SHA-256 only, listed without tokens", async () => {
    const list = await as(undefined, "GET", "/admin/v1/admins");
    const names = list.body.items.map((a: { name: string }) => a.name);
    expect(names).toEqual(expect.arrayContaining(["Ana (platform)", "Sam (data steward)", "Pat"]));
    expect(JSON.stringify(list.body)).not.toContain(ana.token);
    const { rows } = await t.db.query<{ token_sha256: string }>(
      "SELECT token_sha256 FROM trellis.admin_credentials WHERE id = $1",
      [ana.id],
    );
    expect(rows[0]?.token_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(rows)).not.toContain(ana.token);
    // A steward cannot run the control plane.
    const denied = await as(sam, "POST", "/admin/v1/admins", { name: "x", roles: ["admin"] });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("role_missing");
    expect((await auditFor(t.db, denied.body.error.request_id))[0]).toMatchObject({
      actor_id: `admin:${sam.id}`,
      outcome: "denied",
      error_code: "role_missing",
    });
  });

  it("a draft is not in the catalog; apps cannot be made from it", async () => {
    const draft = await as(ana, "POST", "/admin/v1/templates/custom", assetRegister());
    expect(draft.status).toBe(201);
    expect(draft.body).toMatchObject({
      id: "asset-register",
      version: 1,
      status: "draft",
      submitted_by: `admin:${ana.id}`,
    });
    const catalog = await as(ana, "GET", "/admin/v1/templates");
    expect(catalog.body.items.map((x: { id: string }) => x.id)).not.toContain("asset-register");
    const app = await as(ana, "POST", "/admin/v1/apps", {
      name: "Kit",
      template: "asset-register",
      owners: ["o@x.org"],
    });
    expect(app.status).toBe(404);
    expect(app.body.error.code).toBe("template_not_found");
  });

  it("only a steward approves, and never the person who submitted", async () => {
    const byAdmin = await as(
      ana,
      "POST",
      "/admin/v1/templates/custom/asset-register/versions/1/approve",
      {},
    );
    expect(byAdmin.status).toBe(403);
    expect(byAdmin.body.error.code).toBe("role_missing");
    const own = await as(
      pat,
      "POST",
      "/admin/v1/templates/custom",
      assetRegister({ id: "pats-kit" }),
    );
    expect(own.status).toBe(201);
    const self = await as(
      pat,
      "POST",
      "/admin/v1/templates/custom/pats-kit/versions/1/approve",
      {},
    );
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe("steward_must_differ");
    // The table refuses it too, whoever writes.
    const sql = await t.db
      .query(
        "UPDATE trellis.custom_templates SET status = 'approved', decided_by = submitted_by, decided_at = now() WHERE id = 'pats-kit'",
      )
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(sql).toBe("23514");
    const listed = await as(sam, "GET", "/admin/v1/templates/custom");
    expect(listed.body.items.find((v: { id: string }) => v.id === "pats-kit").status).toBe("draft");
  });

  it("approved by a steward, it is in the catalog and apps use it on its base's tables and API", async () => {
    const ok = await as(
      sam,
      "POST",
      "/admin/v1/templates/custom/asset-register/versions/1/approve",
      { note: "fine" },
    );
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      status: "approved",
      decided_by: `admin:${sam.id}`,
      decision_note: "fine",
    });
    expect((await auditFor(t.db, ok.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "template.approve",
      actor_id: `admin:${sam.id}`,
      resource_id: "asset-register@1",
      diff: { status: { from: "draft", to: "approved" }, submitted_by: `admin:${ana.id}` },
    });
    const again = await as(
      sam,
      "POST",
      "/admin/v1/templates/custom/asset-register/versions/1/reject",
      {},
    );
    expect(again.body.error.code).toBe("template_not_draft");

    const catalog = await as(ana, "GET", "/admin/v1/templates");
    expect(catalog.body.items.find((x: { id: string }) => x.id === "asset-register")).toMatchObject(
      {
        version: 1,
        base: "directory",
        retention_days_default: 400,
        approved_by: `admin:${sam.id}`,
      },
    );
    const app = await as(ana, "POST", "/admin/v1/apps", {
      name: "Kit",
      template: "asset-register",
      owners: ["o@x.org"],
    });
    expect(app.status).toBe(201);
    expect(app.body).toMatchObject({
      template: "asset-register",
      template_version: 1,
      retention_days: 400,
      payload_schema: ASSET_SCHEMA,
    });
    const tok = await issueToken(t, app.body.id, "ana", ["create", "read"]);
    const item = await t.call({
      method: "POST",
      url: `/api/v1/apps/${app.body.id}/items`,
      token: tok,
      body: { kind: "laptop", attrs: { name: "X1", serial: "S1" } },
    });
    expect(item.status).toBe(201);
    const bad = await t.call({
      method: "POST",
      url: `/api/v1/apps/${app.body.id}/items`,
      token: tok,
      body: { kind: "laptop", attrs: { serial: "S2" } },
    });
    expect(bad.body.error.code).toBe("payload_invalid"); // the template's default schema applies
    const wrong = await t.call({
      method: "GET",
      url: `/api/v1/apps/${app.body.id}/events`,
      token: tok,
    });
    expect(wrong.body.error.code).toBe("resource_not_in_template");
  });

  it("a new version waits for its own approval; a rejected one never reaches the catalog", async () => {
    const v2 = await as(
      ana,
      "POST",
      "/admin/v1/templates/custom",
      assetRegister({ title: "Asset register v2" }),
    );
    expect(v2.body.version).toBe(2);
    const detail = async () =>
      (await as(ana, "GET", "/admin/v1/templates")).body.items.find(
        (x: { id: string }) => x.id === "asset-register",
      );
    expect((await detail()).title).toBe("Asset register");
    const rejected = await as(
      sam,
      "POST",
      "/admin/v1/templates/custom/asset-register/versions/2/reject",
      { note: "keep v1" },
    );
    expect(rejected.body.status).toBe("rejected");
    expect((await detail()).version).toBe(1);
    const moved = await as(
      ana,
      "POST",
      "/admin/v1/templates/custom",
      assetRegister({ base: "form-intake" }),
    );
    expect(moved.body.error.code).toBe("template_exists"); // a version cannot change its base
  });

  it.each([
    ["a built-in id", assetRegister({ id: "directory" }), 409, "template_exists"],
    ["the reserved id custom", assetRegister({ id: "custom" }), 409, "template_exists"],
    [
      "an unknown base",
      assetRegister({ id: "x-one", base: "spreadsheet" }),
      404,
      "template_not_found",
    ],
    [
      "a block the base cannot use",
      assetRegister({ id: "x-two", default_policy_blocks: ["assigned-reviewer"] }),
      400,
      "policy_block_unknown",
    ],
    [
      "an unsafe payload schema",
      assetRegister({ id: "x-three", payload_schema: { $ref: "#/x" } }),
      400,
      "payload_schema_invalid",
    ],
    [
      "an extra field",
      assetRegister({ id: "x-four", sql: "DROP TABLE trellis.apps" }),
      400,
      "invalid_request",
    ],
    [
      "a short description",
      assetRegister({ id: "x-five", description: "tiny" }),
      400,
      "invalid_request",
    ],
  ])("refuses %s with a precise code, audited, nothing stored", async (_n, body, status, code) => {
    const res = await as(ana, "POST", "/admin/v1/templates/custom", body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "template.submit",
      outcome: "denied",
    });
    const { rows } = await t.db.query("SELECT 1 FROM trellis.custom_templates WHERE id = $1", [
      (body as { id: string }).id,
    ]);
    expect(rows).toEqual([]);
  });

  it("an app of a built-in template still needs its payload schema", async () => {
    const res = await as(ana, "POST", "/admin/v1/apps", {
      name: "x",
      template: "directory",
      owners: ["o@x.org"],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("payload_schema_required");
  });

  it("a revoked credential stops at once; nobody revokes the credential they are using", async () => {
    const temp = await person("Temp", ["admin"]);
    expect((await as(temp, "GET", "/admin/v1/templates")).status).toBe(200);
    expect((await as(temp, "DELETE", `/admin/v1/admins/${temp.id}`)).body.error.code).toBe(
      "forbidden",
    );
    expect((await as(ana, "DELETE", `/admin/v1/admins/${temp.id}`)).status).toBe(204);
    const after = await as(temp, "GET", "/admin/v1/templates");
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe("admin_token_invalid");
  });
});

describeOnPostgres("custom templates across servers", () => {
  it("an approval on one server puts the template in every server's catalog", async () => {
    const t = await startTestApp("postgres");
    const other = await startSecondServer(t);
    try {
      const mk = async (name: string, roles: string[]) =>
        (await t.call({ method: "POST", url: "/admin/v1/admins", body: { name, roles } })).body
          .token as string;
      const ana = await mk("Ana", ["admin"]);
      const sam = await mk("Sam", ["steward"]);
      await t.call({
        method: "POST",
        url: "/admin/v1/templates/custom",
        token: ana,
        body: assetRegister(),
      });
      await t.call({
        method: "POST",
        url: "/admin/v1/templates/custom/asset-register/versions/1/approve",
        token: sam,
        body: {},
      });
      const deadline = Date.now() + 3000;
      let status = 0;
      while (Date.now() < deadline) {
        const res = await other.app.inject({
          method: "POST",
          url: "/admin/v1/apps",
          headers: { authorization: `Bearer ${ana}`, "content-type": "application/json" },
          payload: JSON.stringify({ name: "Kit", template: "asset-register", owners: ["o@x.org"] }),
        });
        status = res.statusCode;
        if (status === 201) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe(201);
    } finally {
      await other.close();
      await t.close();
    }
  });
});
