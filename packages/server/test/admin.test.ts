import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import {
  ADMIN_TOKEN,
  auditFor,
  createApp,
  DATASTORES,
  freshDb,
  SCHEMA,
  startTestApp,
  type TestApp,
} from "./harness";

describe.each(DATASTORES)("control plane on %s", (kind) => {
  let t: TestApp;
  let appId: string;
  beforeAll(async () => {
    t = await startTestApp(kind);
    appId = await createApp(t, "Facilities");
  });
  afterAll(() => t?.close());

  it("lists the catalog with form-intake, its scopes and retention default", async () => {
    const res = await t.call({ method: "GET", url: "/admin/v1/templates" });
    expect(res.status).toBe(200);
    const fi = res.body.items.find((x: { id: string }) => x.id === "form-intake");
    expect(fi).toMatchObject({ version: 1, retention_days_default: 730 });
    expect(fi.scopes.map((s: { name: string }) => s.name).sort()).toEqual([
      "admin:read",
      "create",
      "delete",
      "read",
      "read:all",
    ]);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "template.list",
      outcome: "allowed",
      actor_role: "admin",
      actor_id: "admin:env",
    });
  });

  it("shows one template: manifest, versions, and who-sees-what in plain words", async () => {
    const res = await t.call({ method: "GET", url: "/admin/v1/templates/form-intake" });
    expect(res.status).toBe(200);
    expect(res.body.summary.id).toBe("form-intake");
    expect(res.body.versions).toEqual([1]);
    expect(res.body.manifest.tables).toEqual(["trellis.form_intake_submissions"]);
    const words = res.body.plain_summary.join("\n");
    expect(words).toContain("Kept for 730 days");
    expect(words).toContain("Owner-scoped read: People can read the records they created");
    expect(words).toContain("read:all: Read every entry of the app");
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "template.get",
      resource_id: "form-intake",
    });
    const missing = await t.call({ method: "GET", url: "/admin/v1/templates/no-such-thing" });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("template_not_found");
    const bad = await t.call({ method: "GET", url: "/admin/v1/templates/..%2Fetc" });
    expect(bad.status).toBe(400);
  });

  it.each([
    ["no token", null, "auth_required"],
    ["a wrong token", "wrong-token-0123456789abcdef0123456789abcdef", "admin_token_invalid"],
    ["an app token", "eyJhbGciOiJFZERTQSJ9.e30.sig", "admin_token_invalid"],
  ])("refuses %s with 401 and audits it", async (_name, token, code) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      token,
      body: { name: "x", template: "form-intake", owners: ["a"], payload_schema: SCHEMA },
    });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe(code);
    const [event] = await auditFor(t.db, res.body.error.request_id);
    expect(event).toMatchObject({
      action: "app.create",
      outcome: "denied",
      error_code: code,
      actor_role: "anonymous",
      actor_id: null,
    });
    const apps = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.apps WHERE name = 'x'",
    );
    expect(apps.rows[0]?.n).toBe(0);
  });

  it("creates an app: 201, active, retention default from the template, schema normalized, audited in the same transaction", async () => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name: "Badges",
        template: "form-intake",
        owners: ["ana@example.com", "ana@example.com", "ben@example.com"],
        payload_schema: SCHEMA,
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: "Badges",
      template: "form-intake",
      template_version: 1,
      status: "active",
      retention_days: 730,
      owners: ["ana@example.com", "ben@example.com"],
    });
    expect(res.body.id).toMatch(/^app_[0-9a-z]{26}$/);
    expect(res.body.payload_schema.additionalProperties).toBe(false);
    const [event] = await auditFor(t.db, res.headers["x-request-id"] as string);
    expect(event).toMatchObject({
      action: "app.create",
      resource_id: res.body.id,
      app_id: res.body.id,
      outcome: "allowed",
    });
    const got = await t.call({ method: "GET", url: `/admin/v1/apps/${res.body.id}` });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
  });

  it("honours retention_days within bounds", async () => {
    const ok = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name: "Short",
        template: "form-intake",
        owners: ["a"],
        payload_schema: SCHEMA,
        retention_days: 30,
      },
    });
    expect(ok.body.retention_days).toBe(30);
    for (const retention_days of [0, 3651, 1.5]) {
      const bad = await t.call({
        method: "POST",
        url: "/admin/v1/apps",
        body: {
          name: "Bad",
          template: "form-intake",
          owners: ["a"],
          payload_schema: SCHEMA,
          retention_days,
        },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe("invalid_request");
    }
  });

  it.each([
    [
      "missing name",
      { template: "form-intake", owners: ["a"], payload_schema: SCHEMA },
      400,
      "invalid_request",
    ],
    [
      "no owners",
      { name: "n", template: "form-intake", owners: [], payload_schema: SCHEMA },
      400,
      "invalid_request",
    ],
    [
      "extra field",
      {
        name: "n",
        template: "form-intake",
        owners: ["a"],
        payload_schema: SCHEMA,
        status: "active",
      },
      400,
      "invalid_request",
    ],
    [
      "unknown template",
      { name: "n", template: "crm", owners: ["a"], payload_schema: SCHEMA },
      404,
      "template_not_found",
    ],
    [
      "remote $ref in schema",
      {
        name: "n",
        template: "form-intake",
        owners: ["a"],
        payload_schema: {
          type: "object",
          properties: { a: { $ref: "https://evil.example/s.json" } },
        },
      },
      400,
      "payload_schema_invalid",
    ],
    [
      "catastrophic pattern",
      {
        name: "n",
        template: "form-intake",
        owners: ["a"],
        payload_schema: {
          type: "object",
          properties: { a: { type: "string", pattern: "^(a+)+$" } },
        },
      },
      400,
      "payload_schema_invalid",
    ],
    [
      "root not an object",
      { name: "n", template: "form-intake", owners: ["a"], payload_schema: { type: "string" } },
      400,
      "payload_schema_invalid",
    ],
  ])("refuses an app with %s", async (_name, body, status, code) => {
    const res = await t.call({ method: "POST", url: "/admin/v1/apps", body });
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "app.create",
      outcome: "denied",
      error_code: code,
    });
  });

  it("an unknown or malformed app id is a 404 / 400, audited", async () => {
    const missing = await t.call({
      method: "GET",
      url: "/admin/v1/apps/app_0000000000000000000000000z",
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("app_not_found");
    expect((await auditFor(t.db, missing.body.error.request_id))[0]).toMatchObject({
      action: "app.get",
      outcome: "denied",
      app_id: "app_0000000000000000000000000z",
      resource_id: "app_0000000000000000000000000z",
    });
    const malformed = await t.call({ method: "GET", url: "/admin/v1/apps/'%3Bdrop" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe("invalid_request");
  });

  it("issues a token once: default TTL one hour, only its id and metadata stored", async () => {
    const res = await t.call({
      method: "POST",
      url: `/admin/v1/apps/${appId}/tokens`,
      body: { subject: "sam", scopes: ["read", "create", "read"] },
    });
    expect(res.status).toBe(201);
    expect(res.body.scopes).toEqual(["create", "read"]);
    expect(res.body.token_id).toMatch(/^tok_/);
    const ttl = (Date.parse(res.body.expires_at) - t.clock.now().getTime()) / 1000;
    expect(ttl).toBeGreaterThan(3598);
    expect(ttl).toBeLessThanOrEqual(3600);
    const [header, payload] = (res.body.token as string)
      .split(".")
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
    expect(header).toMatchObject({ alg: "EdDSA", typ: "JWT" });
    expect(payload).toMatchObject({
      aud: appId,
      sub: "sam",
      jti: res.body.token_id,
      scope: "create read",
      iss: "trellis",
    });
    expect(payload.exp - payload.iat).toBe(3600);
    const rows = await t.db.query<Record<string, unknown>>(
      "SELECT * FROM trellis.tokens WHERE id = $1",
      [res.body.token_id],
    );
    expect(rows.rows).toHaveLength(1);
    expect(JSON.stringify(rows.rows)).not.toContain((res.body.token as string).split(".")[2]);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "token.create",
      token_id: res.body.token_id,
      app_id: appId,
    });
  });

  it.each([
    ["a scope the template lacks", { subject: "s", scopes: ["admin"] }, 400, "scope_unknown"],
    [
      "a TTL under a minute",
      { subject: "s", scopes: ["read"], ttl_seconds: 10 },
      400,
      "ttl_out_of_range",
    ],
    [
      "a TTL over the maximum",
      { subject: "s", scopes: ["read"], ttl_seconds: 28_801 },
      400,
      "ttl_out_of_range",
    ],
    ["no scopes", { subject: "s", scopes: [] }, 400, "invalid_request"],
    ["no subject", { scopes: ["read"] }, 400, "invalid_request"],
  ])("refuses a token with %s", async (_name, body, status, code) => {
    const res = await t.call({ method: "POST", url: `/admin/v1/apps/${appId}/tokens`, body });
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "token.create",
      outcome: "denied",
      error_code: code,
    });
  });

  it("refuses a token for an unknown app", async () => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps/app_0000000000000000000000000z/tokens",
      body: { subject: "s", scopes: ["read"] },
    });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("app_not_found");
  });

  it("lists audit events newest first, filtered by app, actor and outcome, with a cursor", async () => {
    const all = await t.call({ method: "GET", url: `/admin/v1/audit?app=${appId}&limit=200` });
    expect(all.status).toBe(200);
    expect(all.body.items.length).toBeGreaterThan(3);
    expect(all.body.items.every((e: { app_id: string }) => e.app_id === appId)).toBe(true);
    const seqs = all.body.items.map((e: { seq: number }) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    const denied = await t.call({ method: "GET", url: "/admin/v1/audit?outcome=denied&limit=200" });
    expect(denied.body.items.length).toBeGreaterThan(0);
    expect(
      denied.body.items.every(
        (e: { outcome: string; error_code: string }) => e.outcome === "denied" && e.error_code,
      ),
    ).toBe(true);
    const byActor = await t.call({
      method: "GET",
      url: "/admin/v1/audit?actor=admin:env&limit=200",
    });
    expect(byActor.body.items.every((e: { actor_id: string }) => e.actor_id === "admin:env")).toBe(
      true,
    );
    const first = await t.call({ method: "GET", url: `/admin/v1/audit?app=${appId}&limit=2` });
    expect(first.body.items).toHaveLength(2);
    const second = await t.call({
      method: "GET",
      url: `/admin/v1/audit?app=${appId}&limit=2&cursor=${first.body.next_cursor}`,
    });
    expect(second.body.items[0].seq).toBeLessThan(first.body.items[1].seq);
    const bad = await t.call({ method: "GET", url: "/admin/v1/audit?outcome=maybe" });
    expect(bad.status).toBe(400);
  });

  it("writes one audit.list event per audit query", async () => {
    const res = await t.call({ method: "GET", url: "/admin/v1/audit?limit=1" });
    expect(
      (await auditFor(t.db, res.headers["x-request-id"] as string)).map((e) => e.action),
    ).toEqual(["audit.list"]);
  });
});

describe.each(DATASTORES)("generated admin token on %s", (kind) => {
  it("is announced once, stored only as its SHA-256, and survives a restart", async () => {
    const fresh = await freshDb(kind);
    const config = parseConfig({
      TRELLIS_LOG_LEVEL: "silent",
      TRELLIS_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"),
      TRELLIS_DATA_DIR: "/tmp/trellis-admin-test",
    });
    try {
      const announced: string[] = [];
      const app1 = await buildApp({
        config,
        db: fresh.db,
        announceAdminToken: (tok) => announced.push(tok),
      });
      expect(announced).toHaveLength(1);
      const token = announced[0] as string;
      expect(token).toMatch(/^trl_admin_[A-Za-z0-9_-]{43}$/);
      const rows = await fresh.db.query<Record<string, unknown>>(
        "SELECT * FROM trellis.admin_credentials",
      );
      expect(rows.rows).toHaveLength(1);
      expect(rows.rows[0]?.token_sha256).toBe(createHash("sha256").update(token).digest("hex"));
      expect(JSON.stringify(rows.rows)).not.toContain(token.slice(10));
      const ok = await app1.inject({
        method: "GET",
        url: "/admin/v1/templates",
        headers: { authorization: `Bearer ${token}` },
      });
      expect(ok.statusCode).toBe(200);
      const wrong = await app1.inject({
        method: "GET",
        url: "/admin/v1/templates",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(wrong.statusCode).toBe(401);
      await app1.close();
      const app2 = await buildApp({
        config,
        db: fresh.db,
        announceAdminToken: (tok) => announced.push(tok),
      });
      expect(announced).toHaveLength(1);
      const again = await app2.inject({
        method: "GET",
        url: "/admin/v1/templates",
        headers: { authorization: `Bearer ${token}` },
      });
      expect(again.statusCode).toBe(200);
      await app2.close();
    } finally {
      await fresh.drop();
    }
  });
});

describe.each(DATASTORES)("JWKS on %s", (kind) => {
  it("publishes the public verification keys only, and a token verifies against them offline", async () => {
    const { createLocalJWKSet, jwtVerify } = await import("jose");
    const t = await startTestApp(kind);
    try {
      const appId = await createApp(t);
      const res = await t.call({ method: "GET", url: "/.well-known/jwks.json", token: null });
      expect(res.status).toBe(200);
      expect(res.headers["cache-control"]).toBe("public, max-age=300");
      expect(res.body.keys.length).toBeGreaterThanOrEqual(1);
      for (const k of res.body.keys) {
        expect(Object.keys(k).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x"]);
        expect(k).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
      }
      const token = (
        await t.call({
          method: "POST",
          url: `/admin/v1/apps/${appId}/tokens`,
          body: { subject: "s", scopes: ["read"] },
        })
      ).body.token as string;
      const { payload } = await jwtVerify(token, createLocalJWKSet(res.body), {
        issuer: "trellis",
        audience: appId,
      });
      expect(payload.sub).toBe("s");
    } finally {
      await t.close();
    }
  });
});
