import type { App, CreateAppRequest } from "@trellis/contracts";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { Catalog, Template } from "../catalog/catalog";
import { type AppPolicy, type CustomPolicy, compileAppPolicy } from "../policy/app-policy";
import { type BlockId, blockById } from "../policy/blocks";
import type { PolicyEngine } from "../policy/engine";
import { findApp, govVersions, insertApp, updateGovernance } from "./apps.repo";
import {
  checkPayloadSchema,
  compilePayloadValidator,
  type PayloadValidator,
} from "./payload-schema";

/** What the gateway needs of an app on every request, built once per version and cached. */
export interface GovernedApp {
  app: App;
  template: Template;
  validatePayload: PayloadValidator;
  policy: AppPolicy;
  govVersion: number;
}

interface Deps {
  db: Db;
  catalog: Catalog;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
  /** The app's active custom policies (owned by the policy room). */
  activeCustomPolicies: (appId: string) => Promise<CustomPolicy[]>;
  /** Safety net behind NOTIFY: how often cached apps are checked against the database. */
  refreshMs?: number;
}

/** NOTIFY channel: the payload is an app id whose governance changed (status, policies). */
export const APPS_CHANNEL = "trellis_apps";

/** A step run inside the pause transaction (revoking the app's tokens); returns what to apply after commit. */
export type InPauseTx = (tx: Queryable, now: Date) => Promise<() => void>;

export const appsService = ({
  db,
  catalog,
  clock,
  audit,
  engine,
  activeCustomPolicies,
  refreshMs = 5000,
}: Deps) => {
  const governed = new Map<string, GovernedApp>();
  const loading = new Map<string, Promise<GovernedApp | undefined>>();
  let stopListening = async () => {};
  let timer: NodeJS.Timeout | undefined;

  function checkBlocks(template: Template, blocks: readonly string[]): BlockId[] {
    const unknown = blocks.filter((b) => !blockById(b));
    if (unknown.length > 0) {
      throw new TrellisError(
        "policy_block_unknown",
        unknown.map((b) => ({ path: "/policy_blocks", message: `no block "${b.slice(0, 40)}"` })),
      );
    }
    if (blocks.includes("assigned-reviewer") && !template.records.reviewer) {
      throw new TrellisError("policy_block_unknown", [
        { path: "/policy_blocks", message: "assigned-reviewer: this template has no reviewer" },
      ]);
    }
    return [...new Set(blocks)] as BlockId[];
  }

  async function create(ctx: AuditContext, req: CreateAppRequest): Promise<App> {
    const template = catalog.get(req.template);
    if (!template)
      throw new TrellisError("template_not_found", [
        { path: "/template", message: `no template "${req.template.slice(0, 64)}"` },
      ]);
    const schema = req.payload_schema ?? template.defaultPayloadSchema;
    if (!schema) throw new TrellisError("payload_schema_required");
    const checked = checkPayloadSchema(schema);
    if ("issues" in checked) {
      throw new TrellisError(
        "payload_schema_invalid",
        checked.issues.map((i) => ({
          path: `/payload_schema${i.path === "/" ? "" : i.path}`,
          message: i.message,
        })),
      );
    }
    const blocks = checkBlocks(template, req.policy_blocks ?? template.defaultBlocks);
    const app: App = {
      id: newId("app"),
      name: req.name,
      template: template.summary.id,
      template_version: template.summary.version,
      owners: [...new Set(req.owners)],
      payload_schema: checked.schema,
      retention_days: req.retention_days ?? template.summary.retention_days_default,
      status: "active",
      environment: req.environment ?? "dev",
      policy_blocks: blocks,
      created_at: clock.now().toISOString(),
    };
    await db.transaction(async (tx) => {
      await insertApp(tx, app, ctx.actorId ?? "unknown");
      await audit.record(
        { ...ctx, appId: app.id },
        { action: "app.create", resourceType: "app", resourceId: app.id },
        tx,
      );
    });
    return app;
  }

  async function get(id: string): Promise<App> {
    const found = await findApp(db, id);
    if (!found) throw new TrellisError("app_not_found");
    return found.app;
  }

  async function load(id: string): Promise<GovernedApp | undefined> {
    const found = await findApp(db, id);
    const template = found && catalog.get(found.app.template);
    if (!found || !template) return undefined;
    const customs = await activeCustomPolicies(id);
    const policy = compileAppPolicy(engine, {
      appId: id,
      templateId: template.summary.id,
      actions: template.actions,
      version: found.govVersion,
      blocks: found.app.policy_blocks as BlockId[],
      customs,
    });
    // Stored policies were validated before they were stored; a set that no longer validates
    // (a template changed under it) fails closed: the app answers nothing until fixed.
    if ("problems" in policy) throw new Error(`app ${id}: its policy set does not validate`);
    return {
      app: found.app,
      template,
      validatePayload: compilePayloadValidator(found.app.payload_schema),
      policy,
      govVersion: found.govVersion,
    };
  }

  /**
   * The app as the gateway sees it, cached per governance version. A change made here applies
   * at once; other servers hear it through NOTIFY (PostgreSQL) and check every `refreshMs`.
   */
  async function governedApp(id: string): Promise<GovernedApp | undefined> {
    const hit = governed.get(id);
    if (hit) return hit;
    const generation = generations.get(id) ?? 0;
    let pending = loading.get(id);
    if (!pending) {
      pending = load(id).finally(() => loading.delete(id));
      loading.set(id, pending);
    }
    const entry = await pending;
    // Cache only if nothing changed while loading (else the next call loads the new version).
    if (entry && (generations.get(id) ?? 0) === generation) governed.set(id, entry);
    return entry;
  }

  const generations = new Map<string, number>();
  const invalidate = (id: string) => {
    generations.set(id, (generations.get(id) ?? 0) + 1);
    governed.delete(id);
    loading.delete(id);
  };

  async function refresh() {
    const ids = [...governed.keys()];
    if (ids.length === 0) return;
    const versions = await govVersions(db, ids);
    for (const id of ids) {
      if (versions.get(id) !== governed.get(id)?.govVersion) invalidate(id);
    }
  }

  async function start() {
    stopListening = await db.listen(APPS_CHANNEL, (payload) => invalidate(payload));
    timer = setInterval(() => void refresh().catch(() => {}), refreshMs);
    timer.unref();
  }

  async function stop() {
    if (timer) clearInterval(timer);
    await stopListening();
  }

  /**
   * Applies a governance change in `tx`, announces it (delivered at commit to every server)
   * and drops this server's cached copy after commit.
   */
  async function changeGovernance(
    tx: Queryable,
    id: string,
    change: Parameters<typeof updateGovernance>[2],
  ) {
    const updated = await updateGovernance(tx, id, change);
    if (!updated) throw new TrellisError("app_not_found");
    await tx.query("SELECT pg_notify($1, $2)", [APPS_CHANNEL, id]);
    return updated;
  }

  /**
   * Pause: the app's data cannot be reached (app_paused) and, through `inTx`, every token it
   * has is revoked. Resume makes it reachable again; old tokens stay revoked.
   */
  async function pause(ctx: AuditContext, id: string, inTx: InPauseTx): Promise<App> {
    const now = clock.now();
    let after = () => {};
    const updated = await db.transaction(async (tx) => {
      const current = await findApp(tx, id);
      if (!current) throw new TrellisError("app_not_found");
      if (current.app.status === "retired") throw new TrellisError("app_not_active");
      const u = await changeGovernance(tx, id, { status: "paused", pausedAt: now });
      after = await inTx(tx, now);
      await audit.record(ctx, { action: "app.pause", resourceType: "app", resourceId: id }, tx);
      return u;
    });
    after();
    invalidate(id);
    return updated.app;
  }

  async function resume(ctx: AuditContext, id: string): Promise<App> {
    const updated = await db.transaction(async (tx) => {
      const current = await findApp(tx, id);
      if (!current) throw new TrellisError("app_not_found");
      if (current.app.status !== "paused") throw new TrellisError("app_not_active");
      const u = await changeGovernance(tx, id, { status: "active", pausedAt: null });
      await audit.record(ctx, { action: "app.resume", resourceType: "app", resourceId: id }, tx);
      return u;
    });
    invalidate(id);
    return updated.app;
  }

  return {
    create,
    get,
    governedApp,
    invalidate,
    changeGovernance,
    checkBlocks,
    pause,
    resume,
    start,
    stop,
    refresh,
  };
};

export type AppsService = ReturnType<typeof appsService>;
