import { App, AppParams, CreateAppRequest } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Queryable } from "../../db/db";
import { auditContext } from "../../http/context";
import type { AuditService } from "../audit/audit.service";
import type { AppsService } from "./apps.service";

export const appsRoutes: FastifyPluginAsyncZod<{
  apps: AppsService;
  audit: Pick<AuditService, "record">;
  /** Pause revokes every token of the app in the same transaction. */
  revokeAllTx: (tx: Queryable, appId: string, now: Date) => Promise<() => void>;
}> = async (app, { apps, audit, revokeAllTx }) => {
  app.post(
    "/apps/:app/pause",
    {
      schema: { params: AppParams, response: { 200: App } },
      config: { action: "app.pause", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const paused = await apps.pause(auditContext(req.trellis), req.params.app, (tx, now) =>
        revokeAllTx(tx, req.params.app, now),
      );
      req.trellis.audited = true;
      return paused;
    },
  );

  app.post(
    "/apps/:app/resume",
    {
      schema: { params: AppParams, response: { 200: App } },
      config: { action: "app.resume", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const resumed = await apps.resume(auditContext(req.trellis), req.params.app);
      req.trellis.audited = true;
      return resumed;
    },
  );

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
