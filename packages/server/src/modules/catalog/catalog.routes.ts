import { TemplateList } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { AuditService } from "../audit/audit.service";
import type { Catalog } from "./catalog";

export const catalogRoutes: FastifyPluginAsyncZod<{
  catalog: Catalog;
  audit: Pick<AuditService, "record">;
}> = async (app, { catalog, audit }) => {
  app.get(
    "/templates",
    {
      schema: { response: { 200: TemplateList } },
      config: { action: "template.list", resourceType: "template" },
    },
    async (req) => {
      await audit.record(auditContext(req.trellis), {
        action: "template.list",
        resourceType: "template",
      });
      return { items: [...catalog.values()].map((t) => t.summary) };
    },
  );
};
