import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEMPLATES_DIR } from "../src/app";
import { type Db, sqlState } from "../src/db/db";
import { CORE_MIGRATIONS, type MigrationSource, migrate } from "../src/db/migrate";
import { ctxParam, type GatewayCtx } from "../src/gateway/gateway-ctx";
import { DATASTORES, type FreshDb, freshDb } from "./harness";

/**
 * Migration 0014 (the gateway context as trellis.gw_ctx) on a database the previous version
 * migrated and wrote to: the data and its audit events stay, the new functions work under the
 * same row-level security, and the jsonb functions are gone (an older server gets an error,
 * never a write without its claims).
 */
// The previous version: core up to 0013 (0014 is this change, later ones come after it), each
// template up to its last before *_gateway_ctx.
const isNew = (f: string) => f >= "0014_" || f.endsWith("_gateway_ctx.sql");

function sources(): MigrationSource[] {
  return [
    { scope: "core", dir: CORE_MIGRATIONS },
    ...readdirSync(TEMPLATES_DIR, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => ({
        scope: `template:${d.name}`,
        dir: join(TEMPLATES_DIR, d.name, "migrations"),
      })),
  ];
}

/** The same sources without this change's migrations, as the previous version had them. */
function previous(into: string): MigrationSource[] {
  return sources().map((s, i) => {
    const dir = join(into, String(i));
    mkdirSync(dir);
    for (const f of readdirSync(s.dir))
      if (f.endsWith(".sql") && !isNew(f)) copyFileSync(join(s.dir, f), join(dir, f));
    return { scope: s.scope, dir };
  });
}

const APP = "app_upgrade0014";
const ctx = (sub: string, scopes: string, event: string): GatewayCtx => ({
  app_id: APP,
  sub,
  scopes,
  labels: "",
  env: "dev",
  app_env: "dev",
  blocks: "owner-read owner-write app-read",
  policy_ids: "owner-write.create",
  token_id: "tok_upgrade",
  event_id: event,
  request_id: `req_${event}`,
  at: new Date().toISOString(),
});

describe.each(DATASTORES)(
  "migration 0014 over a database of the previous version on %s",
  (kind) => {
    let f: FreshDb;
    let db: Db;
    let dir: string;
    let applied: string[];
    beforeAll(async () => {
      f = await freshDb(kind);
      db = f.db;
      dir = mkdtempSync(join(tmpdir(), "trellis-0014-"));
      await migrate(db, previous(dir));
      await db.query(
        `INSERT INTO trellis.apps (id, name, template_id, template_version, owners, payload_schema,
         retention_days, created_at, created_by, policy_blocks)
       VALUES ($1, 'Upgrade', 'form-intake', 1, '{owner@example.com}', '{}', 30, now(), 'test',
               '{owner-read,owner-write,app-read}')`,
        [APP],
      );
      // A write through the previous version's function, context as jsonb.
      await db.query(
        `SELECT trellis.gw_form_intake_create($1::jsonb, gen_random_uuid(), 'default', '{"title":"before"}'::jsonb, NULL)`,
        [JSON.stringify(ctx("alice", "create read", "evt_before"))],
      );
      applied = await migrate(db, sources());
    });
    afterAll(async () => {
      await f?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const create = (c: GatewayCtx, title: string) =>
      db.query(
        "SELECT trellis.gw_form_intake_create($1::trellis.gw_ctx, gen_random_uuid(), 'default', $2::jsonb, NULL)",
        [ctxParam(c), JSON.stringify({ title })],
      );
    const titles = async (c: GatewayCtx) => {
      const { rows } = await db.query<{ payload: { title: string } }>(
        "SELECT payload FROM trellis.gw_form_intake_list($1::trellis.gw_ctx, NULL, NULL, 50)",
        [ctxParam(c)],
      );
      return rows.map((r) => r.payload.title).sort();
    };

    it("applies only this change's migrations", () => {
      expect(applied).toContain("core/0014_gateway_ctx.sql");
      expect(applied.every((a) => isNew(a.split("/")[1] as string))).toBe(true);
      const laterCore = readdirSync(CORE_MIGRATIONS).filter((f) => f.endsWith(".sql") && isNew(f));
      expect(applied).toHaveLength(
        laterCore.length + readdirSync(TEMPLATES_DIR).filter((t) => !t.includes(".")).length,
      );
    });

    it("keeps the earlier rows and writes new ones under the same row-level security", async () => {
      await create(ctx("alice", "create read", "evt_after"), "after");
      expect(await titles(ctx("alice", "read", "evt_l1"))).toEqual(["after", "before"]);
      // owner-read: bob sees none of alice's rows; without the create scope his write is refused.
      expect(await titles(ctx("bob", "read", "evt_l2"))).toEqual([]);
      let code: string | undefined;
      await create(ctx("bob", "read", "evt_refused"), "x").catch((e) => {
        code = sqlState(e);
      });
      expect(code).toBe("42501");
      const { rows } = await db.query<{ event_id: string; actor_id: string }>(
        "SELECT event_id, actor_id FROM trellis.audit_events WHERE app_id = $1 ORDER BY seq",
        [APP],
      );
      expect(rows).toEqual([
        { event_id: "evt_before", actor_id: "alice" },
        { event_id: "evt_after", actor_id: "alice" },
      ]);
    });

    it("no longer has the jsonb functions an older server would call", async () => {
      let code: string | undefined;
      await db
        .query(
          `SELECT trellis.gw_form_intake_create($1::jsonb, gen_random_uuid(), 'default', '{"title":"old"}'::jsonb, NULL)`,
          [JSON.stringify(ctx("alice", "create read", "evt_old"))],
        )
        .catch((e) => {
          code = sqlState(e);
        });
      expect(code).toBe("42883"); // undefined_function
    });
  },
);
