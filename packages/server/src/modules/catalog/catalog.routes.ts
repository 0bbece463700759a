import { TemplateDetail, TemplateList, TemplateParams } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import { TrellisError } from "../../lib/errors";
import type { AuditService } from "../audit/audit.service";
import { blockById } from "../policy/blocks";
import type { Catalog, Template } from "./catalog";

/** What a template stores and who can see it, in words a non-developer reads. */
function plainSummary(t: Template): string[] {
  const m = t.manifest;
  const lines = [
    m.description,
    `Kept for ${m.retention_days_default} days unless the app says otherwise.`,
    "Who can see and change what, by default:",
    ...m.default_policy_blocks.map((id) => {
      const b = blockById(id);
      return b ? `- ${b.title}: ${b.summary}` : `- ${id}`;
    }),
    "What a key can be allowed to do:",
    ...Object.entries(m.scopes).map(([name, what]) => `- ${name}: ${what}`),
  ];
  if (m.state_machine) {
    const sm = m.state_machine;
    lines.push(
      `Records move through: ${sm.states.join(", ")} (starting at ${sm.initial}).`,
      ...Object.entries(sm.transitions).map(([from, to]) =>
        to.length > 0 ? `- from ${from} to ${to.join(" or ")}` : `- ${from} is final`,
      ),
    );
  }
  for (const u of m.upgrades ?? []) lines.push(`Version ${u.to}: ${u.summary}`);
  lines.push(`Storage: about ${m.cost_card.bytes_per_record} bytes a record. ${m.cost_card.notes}`);
  return lines;
}

export const catalogRoutes: FastifyPluginAsyncZod<{
  catalog: Catalog;
  audit: Pick<AuditService, "record">;
}> = async (app, { catalog, audit }) => {
  app.get(
    "/templates",
    {
      schema: { response: { 200: TemplateList } },
      config: { action: "template.list", resourceType: "template", roles: ["admin", "steward"] },
    },
    async (req) => {
      await audit.record(auditContext(req.trellis), {
        action: "template.list",
        resourceType: "template",
      });
      return { items: [...catalog.values()].map((t) => t.summary) };
    },
  );

  app.get(
    "/templates/:id",
    {
      schema: { params: TemplateParams, response: { 200: TemplateDetail } },
      config: { action: "template.get", resourceType: "template", roles: ["admin", "steward"] },
    },
    async (req) => {
      const t = catalog.get(req.params.id);
      if (!t) throw new TrellisError("template_not_found");
      await audit.record(auditContext(req.trellis), {
        action: "template.get",
        resourceType: "template",
        resourceId: t.summary.id,
      });
      return {
        summary: t.summary,
        manifest: t.manifest as unknown as Record<string, unknown>,
        // Every version an app can be on: 1 up to the current one (each reached by an upgrade).
        versions: Array.from({ length: t.summary.version }, (_, i) => i + 1),
        plain_summary: plainSummary(t),
      };
    },
  );
};
