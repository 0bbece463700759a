import { AuditPage, AuditQuery } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { AuditService } from "./audit.service";

export const auditRoutes: FastifyPluginAsyncZod<{ audit: AuditService }> = async (
  app,
  { audit },
) => {
  app.get(
    "/audit",
    {
      schema: { querystring: AuditQuery, response: { 200: AuditPage } },
      config: { action: "audit.list", resourceType: "audit_event" },
    },
    async (req) => {
      const page = await audit.list(req.query);
      await audit.record(auditContext(req.trellis), {
        action: "audit.list",
        resourceType: "audit_event",
      });
      return page;
    },
  );
};
