import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app";
import type { DatastoreKind } from "../src/db/db";
import { checkManifest } from "../src/modules/catalog/catalog";
import {
  ADMIN_TOKEN,
  auditFor,
  DATASTORES,
  issueToken,
  startTestApp,
  type TestApp,
} from "./harness";

const TEMPLATES = fileURLToPath(new URL("../../../templates", import.meta.url));
const SCHEMA = {
  type: "object",
  properties: { name: { type: "string" }, priority: { type: "integer" } },
};

/** The catalog with directory at version 2: an index (for every app) and a per-app step. */
function catalogWithDirectoryV2(
  step = "UPDATE trellis.directory_items SET attrs = attrs || '{\"priority\": 0}' WHERE app_id = $1 AND kind = 'room' AND NOT attrs ? 'priority'",
) {
  const dir = mkdtempSync(join(tmpdir(), "trellis-v2-"));
  cpSync(TEMPLATES, dir, { recursive: true });
  const file = join(dir, "directory", "manifest.json");
  const m = JSON.parse(readFileSync(file, "utf8"));
  m.version = 2;
  m.upgrades = [
    {
      from: 1,
      to: 2,
      summary: "Rooms have a priority (0 unless set), and lists can sort by it.",
      steps: [{ description: "Give every room without one a priority of 0", sql: step }],
    },
  ];
  writeFileSync(file, JSON.stringify(m, null, 2));
  writeFileSync(
    join(dir, "directory", "migrations", "0002_priority.sql"),
    "CREATE INDEX directory_by_priority ON trellis.directory_items (app_id, (attrs->'priority')) WHERE kind = 'room';\n",
  );
  return dir;
}

// PostgreSQL also as a non-superuser owner: the steps reach the app's rows through the control
// plane's policies (core migration 0007), not by bypassing row-level security.
const SETUPS: Array<[string, DatastoreKind, string | undefined]> = [
  ...DATASTORES.map((k): [string, DatastoreKind, undefined] => [k, k, undefined]),
  ...(DATASTORES.includes("postgres")
    ? [
        ["postgres as a non-superuser owner", "postgres", "trellis_owner_test"] as [
          string,
          DatastoreKind,
          string,
        ],
      ]
    : []),
];

describe.each(SETUPS)("template versions and upgrades on %s", (_name, kind, dbOwner) => {
  let t: TestApp;
  let v2: FastifyInstance;
  let v2dir: string;
  let appA: string;
  let appB: string;
  const call = async (method: "GET" | "POST", url: string, body?: unknown) => {
    const res = await v2.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      payload: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.statusCode, body: JSON.parse(res.body), headers: res.headers };
  };
  /** The rooms' priorities, read as the control plane reads one app (works for any owner). */
  const priorities = (app: string) =>
    t.db.transaction(async (tx) => {
      await tx.query("SELECT set_config('trellis.control_app', $1, true)", [app]);
      const { rows } = await tx.query<{ p: unknown }>(
        "SELECT attrs->'priority' AS p FROM trellis.directory_items WHERE app_id = $1 AND kind = 'room' ORDER BY id",
        [app],
      );
      return rows.map((r) => r.p ?? null);
    });

  beforeAll(async () => {
    t = await startTestApp(kind, {}, { dbOwner }); // version 1 of every template
    const mk = async (name: string) => {
      const res = await t.call({
        method: "POST",
        url: "/admin/v1/apps",
        body: { name, template: "directory", owners: ["o@example.org"], payload_schema: SCHEMA },
      });
      return res.body.id as string;
    };
    appA = await mk("A");
    appB = await mk("B");
    for (const app of [appA, appB]) {
      const tok = await issueToken(t, app, "ana", ["create"]);
      for (const body of [
        { kind: "room", attrs: { name: "Blue" } },
        { kind: "room", attrs: { name: "Red", priority: 3 } },
        { kind: "room", attrs: { name: "Green" } },
        { kind: "desk", attrs: { name: "D1" } },
      ])
        await t.call({ method: "POST", url: `/api/v1/apps/${app}/items`, token: tok, body });
    }
    // The same database, now served with version 2 of directory (its migration runs at start).
    v2dir = catalogWithDirectoryV2();
    v2 = await buildApp({ config: t.config, db: t.db, clock: t.clock, templatesDir: v2dir });
  });
  afterAll(async () => {
    await v2?.close();
    await t?.close();
    rmSync(v2dir, { recursive: true, force: true });
  });

  it("a new version never moves an existing app: it stays on 1; the catalog lists both", async () => {
    expect((await call("GET", `/admin/v1/apps/${appA}`)).body.template_version).toBe(1);
    const detail = await call("GET", "/admin/v1/templates/directory");
    expect(detail.body.versions).toEqual([1, 2]);
    expect(detail.body.plain_summary).toContain(
      "Version 2: Rooms have a priority (0 unless set), and lists can sort by it.",
    );
    const fresh = await call("POST", "/admin/v1/apps", {
      name: "C",
      template: "directory",
      owners: ["o@example.org"],
      payload_schema: SCHEMA,
    });
    expect(fresh.body.template_version).toBe(2);
  });

  it("a dry run says what changes and how many rows, and changes nothing", async () => {
    const dry = await call("POST", `/admin/v1/apps/${appA}/upgrade`, {});
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({
      app_id: appA,
      template: "directory",
      from_version: 1,
      to_version: 2,
      dry_run: true,
      summaries: ["Version 2: Rooms have a priority (0 unless set), and lists can sort by it."],
      steps: [{ version: 2, description: "Give every room without one a priority of 0", rows: 2 }],
    });
    expect(dry.body.plan).toMatch(/^[0-9a-f]{32}$/);
    expect(await priorities(appA)).toEqual([null, 3, null]);
    expect((await call("GET", `/admin/v1/apps/${appA}`)).body.template_version).toBe(1);
    expect((await auditFor(t.db, dry.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "app.upgrade",
      outcome: "allowed",
      diff: { dry_run: true, template_version: { from: 1, to: 2 } },
    });
  });

  it("the real run needs the dry run's plan; then it upgrades one app, in a transaction, audited", async () => {
    const none = await call("POST", `/admin/v1/apps/${appA}/upgrade`, { dry_run: false });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe("upgrade_needs_dry_run");
    const wrong = await call("POST", `/admin/v1/apps/${appA}/upgrade`, {
      dry_run: false,
      confirm: "0".repeat(32),
    });
    expect(wrong.body.error.code).toBe("upgrade_needs_dry_run");
    const { plan } = (await call("POST", `/admin/v1/apps/${appA}/upgrade`, {})).body;
    const real = await call("POST", `/admin/v1/apps/${appA}/upgrade`, {
      dry_run: false,
      confirm: plan,
    });
    expect(real.status).toBe(200);
    expect(real.body).toMatchObject({ dry_run: false, steps: [{ rows: 2 }] });
    expect(await priorities(appA)).toEqual([0, 3, 0]);
    expect(await priorities(appB)).toEqual([null, 3, null]); // another app is untouched
    expect((await call("GET", `/admin/v1/apps/${appA}`)).body.template_version).toBe(2);
    expect((await call("GET", `/admin/v1/apps/${appB}`)).body.template_version).toBe(1);
    expect((await auditFor(t.db, real.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "app.upgrade",
      resource_id: appA,
      diff: { template_version: { from: 1, to: 2 }, steps: [{ rows: 2 }] },
    });
    const again = await call("POST", `/admin/v1/apps/${appA}/upgrade`, {});
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("upgrade_not_available");
    const beyond = await call("POST", `/admin/v1/apps/${appB}/upgrade`, { to_version: 3 });
    expect(beyond.body.error.code).toBe("upgrade_not_available");
    const bad = await call("POST", `/admin/v1/apps/${appB}/upgrade`, { to_version: "2" });
    expect(bad.status).toBe(400);
    // The upgraded app still works through the gateway.
    const tok = await issueToken(t, appA, "ana", ["read"]);
    const list = await v2.inject({
      method: "GET",
      url: `/api/v1/apps/${appA}/items?kind=room`,
      headers: { authorization: `Bearer ${tok}` },
    });
    expect(JSON.parse(list.body).items).toHaveLength(3);
  });

  it("a step that fails rolls everything back and names the step", async () => {
    const brokenDir = catalogWithDirectoryV2(
      "UPDATE trellis.directory_items SET attrs = attrs || jsonb_build_object('priority', 1 / 0) WHERE app_id = $1",
    );
    // Same migrations as v2dir (checksums equal), a different step.
    const broken = await buildApp({
      config: t.config,
      db: t.db,
      clock: t.clock,
      templatesDir: brokenDir,
    });
    try {
      const res = await broken.inject({
        method: "POST",
        url: `/admin/v1/apps/${appB}/upgrade`,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        payload: "{}",
      });
      expect(res.statusCode).toBe(409);
      expect(JSON.parse(res.body).error).toMatchObject({
        code: "upgrade_failed",
        issues: [{ path: "/steps/0" }],
      });
      expect(await priorities(appB)).toEqual([null, 3, null]);
    } finally {
      await broken.close();
      rmSync(brokenDir, { recursive: true, force: true });
    }
  });
});

describe("the manifest's upgrades are checked", () => {
  const withManifest = (change: (m: Record<string, unknown>) => void) => {
    const dir = mkdtempSync(join(tmpdir(), "trellis-up-"));
    const tdir = join(dir, "directory");
    cpSync(join(TEMPLATES, "directory"), tdir, { recursive: true });
    const file = join(tdir, "manifest.json");
    const m = JSON.parse(readFileSync(file, "utf8"));
    change(m);
    writeFileSync(file, JSON.stringify(m));
    const problems = checkManifest(tdir).problems.map((p) => `${p.path}: ${p.message}`);
    rmSync(dir, { recursive: true, force: true });
    return problems;
  };
  const step = (sql: string) => ({
    from: 1,
    to: 2,
    summary: "x",
    steps: [{ description: "x", sql }],
  });

  it("version 2 needs an upgrade from 1", () => {
    expect(
      withManifest((m) => {
        m.version = 2;
      }),
    ).toEqual(["/upgrades: needs one upgrade from 1 to 2"]);
  });
  it("every step is scoped to the app ($1) and is one statement", () => {
    expect(
      withManifest((m) => {
        m.version = 2;
        m.upgrades = [step("UPDATE trellis.directory_items SET attrs = '{}'")];
      }),
    ).toEqual(["/upgrades/0/steps/0/sql: must scope its rows to the app with $1"]);
    expect(
      withManifest((m) => {
        m.version = 2;
        m.upgrades = [
          step(
            "UPDATE trellis.directory_items SET attrs = '{}' WHERE app_id = $1; DROP TABLE trellis.apps",
          ),
        ];
      }),
    ).toEqual(["/upgrades/0/steps/0/sql: must be one statement"]);
  });
});
