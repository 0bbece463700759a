import { AuditExportQuery, AuditPage, AuditQuery } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Db } from "../../db/db";
import { auditContext } from "../../http/context";
import type { AuditService } from "./audit.service";
import { exportEvents } from "./audit-export";

export const auditRoutes: FastifyPluginAsyncZod<{ audit: AuditService; db: Db }> = async (
  app,
  { audit, db },
) => {
  app.get(
    "/audit/export",
    {
      schema: { querystring: AuditExportQuery },
      config: { action: "audit.export", resourceType: "audit_event" },
    },
    async (req, reply) => {
      const { format, ...filter } = req.query;
      // The export is itself audited before it starts (an auditor sees who took the log out).
      await audit.record(auditContext(req.trellis), {
        action: "audit.export",
        resourceType: "audit_event",
        diff: { format, filter },
      });
      req.trellis.audited = true;
      const { stream, done } = exportEvents(db, filter, format);
      done.catch((err) => req.log.warn({ err }, "audit export ended early"));
      return reply
        .type(format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson")
        .header("content-disposition", `attachment; filename="trellis-audit.${format}"`)
        .send(stream);
    },
  );

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
