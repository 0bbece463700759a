import { AppParams, UpgradeReport, UpgradeRequest } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { UpgradeService } from "./upgrade.service";

/** `POST /admin/v1/apps/:app/upgrade`: dry run (default), then the real run with its plan. */
export const upgradeRoutes: FastifyPluginAsyncZod<{ upgrades: UpgradeService }> = async (
  app,
  { upgrades },
) => {
  app.post(
    "/apps/:app/upgrade",
    {
      schema: { params: AppParams, body: UpgradeRequest, response: { 200: UpgradeReport } },
      config: { action: "app.upgrade", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const report = await upgrades.upgrade(auditContext(req.trellis), req.params.app, req.body);
      req.trellis.audited = true;
      return report;
    },
  );
};
