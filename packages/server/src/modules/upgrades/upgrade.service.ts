import { createHash } from "node:crypto";
import type { UpgradeReport } from "@trellis/contracts";
import { type Db, sqlState } from "../../db/db";
import { TrellisError } from "../../lib/errors";
import type { AppsService } from "../apps/apps.service";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { Catalog, Upgrade } from "../catalog/catalog";

/** Thrown inside a dry run's transaction so it rolls back; carries the report out. */
class DryRunDone extends Error {
  constructor(readonly report: UpgradeReport) {
    super("dry run");
  }
}

/**
 * Moving one app to a newer version of its template. Schema changes (migrations/) already ran
 * for every app at start; an upgrade runs the manifest's per-app steps (each scoped to the app
 * by $1) and records the new version, in one transaction, audited with the rows each step
 * touched. A dry run does the same and rolls back. The real run needs the dry run's `plan`
 * (a hash of the app, both versions and every step's SQL), so nobody upgrades unseen, and a
 * template that changed since the dry run is refused.
 */
export function upgradeService(deps: {
  db: Db;
  catalog: Catalog;
  audit: Pick<AuditService, "record">;
  apps: Pick<AppsService, "get" | "invalidate" | "changeGovernance">;
}) {
  const { db, catalog, audit, apps } = deps;

  const planOf = (appId: string, from: number, to: number, ups: Upgrade[]) =>
    createHash("sha256")
      .update(JSON.stringify({ appId, from, to, steps: ups.map((u) => u.steps) }))
      .digest("hex")
      .slice(0, 32);

  async function upgrade(
    ctx: AuditContext,
    appId: string,
    req: { to_version?: number; dry_run: boolean; confirm?: string },
  ): Promise<UpgradeReport> {
    const app = await apps.get(appId);
    const template = catalog.get(app.template);
    if (!template) throw new TrellisError("template_not_found");
    const from = app.template_version;
    const to = req.to_version ?? template.summary.version;
    if (to <= from || to > template.summary.version)
      throw new TrellisError("upgrade_not_available");
    const ups = (template.manifest.upgrades ?? [])
      .filter((u) => u.from >= from && u.to <= to)
      .sort((a, b) => a.from - b.from);
    const plan = planOf(appId, from, to, ups);
    if (!req.dry_run && req.confirm !== plan) throw new TrellisError("upgrade_needs_dry_run");

    const run = async (): Promise<UpgradeReport> =>
      db.transaction(async (tx) => {
        // Steps reach this app's rows only, also for a non-superuser owner (core migration 0007).
        await tx.query("SELECT set_config('trellis.control_app', $1, true)", [appId]);
        // The app's row first: a concurrent upgrade of the same app waits, then finds it moved.
        const { rows } = await tx.query<{ v: number }>(
          "SELECT template_version AS v FROM trellis.apps WHERE id = $1 FOR UPDATE",
          [appId],
        );
        if (Number(rows[0]?.v) !== from) throw new TrellisError("upgrade_needs_dry_run");
        const steps: UpgradeReport["steps"] = [];
        for (const u of ups) {
          for (const step of u.steps) {
            const res = await tx.query(step.sql, [appId]).catch((err: unknown) => {
              // The template's step failed (the dry run shows it first): nothing changes.
              if (sqlState(err))
                throw new TrellisError("upgrade_failed", [
                  { path: `/steps/${steps.length}`, message: step.description },
                ]);
              throw err;
            });
            steps.push({ version: u.to, description: step.description, rows: res.rowCount ?? 0 });
          }
        }
        const report: UpgradeReport = {
          app_id: appId,
          template: template.summary.id,
          from_version: from,
          to_version: to,
          dry_run: req.dry_run,
          summaries: ups.map((u) => `Version ${u.to}: ${u.summary}`),
          steps,
          plan,
        };
        if (req.dry_run) throw new DryRunDone(report);
        await tx.query("UPDATE trellis.apps SET template_version = $2 WHERE id = $1", [appId, to]);
        await apps.changeGovernance(tx, appId, {}); // every server reloads the app

        await audit.record(
          { ...ctx, appId },
          {
            action: "app.upgrade",
            resourceType: "app",
            resourceId: appId,
            diff: { template_version: { from, to }, steps },
          },
          tx,
        );
        return report;
      });
    try {
      const report = await run();
      apps.invalidate(appId);
      return report;
    } catch (err) {
      if (err instanceof DryRunDone) {
        await audit.record(
          { ...ctx, appId },
          {
            action: "app.upgrade",
            resourceType: "app",
            resourceId: appId,
            diff: { dry_run: true, template_version: { from, to }, steps: err.report.steps },
          },
        );
        return err.report;
      }
      throw err;
    }
  }

  return { upgrade };
}

export type UpgradeService = ReturnType<typeof upgradeService>;
