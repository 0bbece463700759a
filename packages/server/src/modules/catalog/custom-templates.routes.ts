import {
  CustomTemplateList,
  CustomTemplateParams,
  CustomTemplateVersion,
  DecideCustomTemplateRequest,
  SubmitCustomTemplateRequest,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { AuditService } from "../audit/audit.service";
import type { CustomTemplatesService } from "./custom-templates";

/** Custom templates: admins submit drafts, stewards (another person) approve or reject. */
export const customTemplatesRoutes: FastifyPluginAsyncZod<{
  custom: CustomTemplatesService;
  audit: Pick<AuditService, "record">;
}> = async (app, { custom, audit }) => {
  const resourceType = "template";

  app.post(
    "/templates/custom",
    {
      schema: { body: SubmitCustomTemplateRequest, response: { 201: CustomTemplateVersion } },
      config: { action: "template.submit", resourceType },
    },
    async (req, reply) => {
      const v = await custom.submit(auditContext(req.trellis), req.body);
      req.trellis.audited = true;
      return reply.code(201).send(v);
    },
  );

  app.get(
    "/templates/custom",
    {
      schema: { response: { 200: CustomTemplateList } },
      config: { action: "template.list_custom", resourceType, roles: ["admin", "steward"] },
    },
    async (req) => {
      const items = await custom.list();
      await audit.record(auditContext(req.trellis), {
        action: "template.list_custom",
        resourceType,
      });
      req.trellis.audited = true;
      return { items };
    },
  );

  for (const decision of ["approve", "reject"] as const) {
    app.post(
      `/templates/custom/:id/versions/:version/${decision}`,
      {
        schema: {
          params: CustomTemplateParams,
          body: DecideCustomTemplateRequest,
          response: { 200: CustomTemplateVersion },
        },
        config: { action: `template.${decision}`, resourceType, roles: ["steward"] },
      },
      async (req) => {
        const v = await custom.decide(
          auditContext(req.trellis),
          req.params.id,
          req.params.version,
          decision === "approve" ? "approved" : "rejected",
          req.body?.note,
        );
        req.trellis.audited = true;
        return v;
      },
    );
  }
};
