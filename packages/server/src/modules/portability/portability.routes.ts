import { AppParams, ImportResult, TemplateExport, TemplateParams } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Db } from "../../db/db";
import { auditContext } from "../../http/context";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import type { AuditService } from "../audit/audit.service";
import type { Catalog } from "../catalog/catalog";
import { exportApp } from "./app-export";
import { importApp } from "./app-import";
import { exportTemplate } from "./template-export";

/** Template and app export, app import (control plane). */
export const portabilityRoutes: FastifyPluginAsyncZod<{
  db: Db;
  catalog: Catalog;
  clock: Clock;
  audit: Pick<AuditService, "record">;
}> = async (app, { db, catalog, clock, audit }) => {
  // The import body is read as a stream, line by line, never whole (exports can be large).
  app.addContentTypeParser("application/x-ndjson", (_req, payload, done) => done(null, payload));

  app.get(
    "/templates/:id/export",
    {
      schema: { params: TemplateParams, response: { 200: TemplateExport } },
      config: { action: "template.export", resourceType: "template" },
    },
    async (req) => {
      const t = catalog.get(req.params.id);
      if (!t) throw new TrellisError("template_not_found");
      await audit.record(auditContext(req.trellis), {
        action: "template.export",
        resourceType: "template",
        resourceId: t.summary.id,
      });
      return exportTemplate(t);
    },
  );

  app.get(
    "/apps/:app/export",
    {
      schema: { params: AppParams },
      config: { action: "app.export", resourceType: "app", resourceParam: "app" },
    },
    async (req, reply) => {
      const ctx = { ...auditContext(req.trellis), appId: req.params.app };
      const { stream, done } = await exportApp({ db, catalog, clock }, req.params.app);
      req.trellis.audited = true;
      // The event records the hashes once the last line is out (or the failure).
      done.then(
        (summary) =>
          audit.record(ctx, {
            action: "app.export",
            resourceType: "app",
            resourceId: req.params.app,
            diff: { ...summary },
          }),
        (err) => {
          req.log.warn({ err }, "app export ended early");
          return audit.record(ctx, {
            action: "app.export",
            resourceType: "app",
            resourceId: req.params.app,
            outcome: "error",
            errorCode: "internal",
          });
        },
      );
      return reply
        .type("application/x-ndjson")
        .header("content-disposition", `attachment; filename="${req.params.app}.ndjson"`)
        .send(stream);
    },
  );

  app.post(
    "/apps/import",
    {
      schema: { response: { 201: ImportResult } },
      config: { action: "app.import", resourceType: "app" },
    },
    async (req, reply) => {
      if (!req.headers["content-type"]?.startsWith("application/x-ndjson"))
        throw new TrellisError("unsupported_media_type");
      const result = await importApp(
        { db, catalog, audit },
        auditContext(req.trellis),
        req.body as AsyncIterable<Buffer>,
      );
      req.trellis.audited = true;
      return reply.code(201).send(result);
    },
  );
};
