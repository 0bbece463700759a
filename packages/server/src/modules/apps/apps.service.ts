import type { App, CreateAppRequest } from "@trellis/contracts";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { Catalog, Template } from "../catalog/catalog";
import { findApp, insertApp } from "./apps.repo";
import {
  checkPayloadSchema,
  compilePayloadValidator,
  type PayloadValidator,
} from "./payload-schema";

/** What the gateway needs of an app on every request, built once per app and cached. */
export interface GovernedApp {
  app: App;
  template: Template;
  validatePayload: PayloadValidator;
}

interface Deps {
  db: Db;
  catalog: Catalog;
  clock: Clock;
  audit: Pick<AuditService, "record">;
}

export const appsService = ({ db, catalog, clock, audit }: Deps) => {
  const governed = new Map<string, GovernedApp>();

  async function create(ctx: AuditContext, req: CreateAppRequest): Promise<App> {
    const template = catalog.get(req.template);
    if (!template)
      throw new TrellisError("template_not_found", [
        { path: "/template", message: `no template "${req.template.slice(0, 64)}"` },
      ]);
    const checked = checkPayloadSchema(req.payload_schema);
    if ("issues" in checked) {
      throw new TrellisError(
        "payload_schema_invalid",
        checked.issues.map((i) => ({
          path: `/payload_schema${i.path === "/" ? "" : i.path}`,
          message: i.message,
        })),
      );
    }
    const app: App = {
      id: newId("app"),
      name: req.name,
      template: template.summary.id,
      template_version: template.summary.version,
      owners: [...new Set(req.owners)],
      payload_schema: checked.schema,
      retention_days: req.retention_days ?? template.summary.retention_days_default,
      status: "active",
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
    const app = await findApp(db, id);
    if (!app) throw new TrellisError("app_not_found");
    return app;
  }

  /**
   * The app as the gateway sees it, cached: the payload schema of an app does not change
   * after creation (template upgrades and pause come with later issues and will invalidate).
   */
  async function governedApp(id: string): Promise<GovernedApp | undefined> {
    const hit = governed.get(id);
    if (hit) return hit;
    const app = await findApp(db, id);
    const template = app && catalog.get(app.template);
    if (!app || !template) return undefined;
    const entry = { app, template, validatePayload: compilePayloadValidator(app.payload_schema) };
    governed.set(id, entry);
    return entry;
  }

  return { create, get, governedApp };
};

export type AppsService = ReturnType<typeof appsService>;
