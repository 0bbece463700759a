import { App, AppParams, CreateAppRequest } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { AuditService } from "../audit/audit.service";
import type { AppsService } from "./apps.service";

export const appsRoutes: FastifyPluginAsyncZod<{
  apps: AppsService;
  audit: Pick<AuditService, "record">;
}> = async (app, { apps, audit }) => {
  app.post(
    "/apps",
    {
      schema: { body: CreateAppRequest, response: { 201: App } },
      config: { action: "app.create", resourceType: "app" },
    },
    async (req, reply) => {
      const created = await apps.create(auditContext(req.trellis), req.body);
      req.trellis.audited = true;
      return reply.code(201).send(created);
    },
  );

  app.get(
    "/apps/:app",
    {
      schema: { params: AppParams, response: { 200: App } },
      config: { action: "app.get", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const found = await apps.get(req.params.app);
      await audit.record(auditContext(req.trellis), {
        action: "app.get",
        resourceType: "app",
        resourceId: found.id,
      });
      return found;
    },
  );
};
