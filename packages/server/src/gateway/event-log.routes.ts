import {
  AppendEventRequest,
  AppParams,
  EventPage,
  ListEventsQuery,
  LogEvent,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Db } from "../db/db";
import { auditContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { TrellisError } from "../lib/errors";
import { newRecordId } from "../lib/ids";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { PolicyEngine } from "../modules/policy/engine";
import { appendEvent, listEvents } from "./event-log.repo";
import { governedHelpers } from "./governed";

const TEMPLATE = "event-log";

/** The gateway routes of the event-log template. Auth (token, app, template, scope) ran in onRequest. */
export const eventLogRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
}> = async (app, { db, clock, audit, engine }) => {
  const { ctxOf, decideOn, newRecord } = governedHelpers({ clock, engine });
  const resourceType = "event";

  app.post(
    "/apps/:app/events",
    {
      schema: { params: AppParams, body: AppendEventRequest, response: { 201: LogEvent } },
      config: { action: "event.append", resourceType, anyScope: ["append"], template: TEMPLATE },
    },
    async (req, reply) => {
      const issues = req.trellis.governed?.validatePayload(req.body.data);
      if (issues)
        throw new TrellisError(
          "payload_invalid",
          issues.map((i) => ({ path: `/data${i.path === "/" ? "" : i.path}`, message: i.message })),
        );
      const d = decideOn(req.trellis, "append", newRecord(req.trellis));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const ctx = ctxOf(req.trellis, d.policyIds);
      const id = newRecordId();
      const seq = await appendEvent(db, ctx, { id, type: req.body.type, data: req.body.data });
      req.trellis.audited = true;
      return reply.code(201).send({
        id,
        app_id: ctx.app_id,
        seq,
        type: req.body.type,
        author_id: ctx.sub,
        data: req.body.data,
        labels: setToLabels(req.trellis.claims?.labels ?? []),
        created_at: ctx.at,
      });
    },
  );

  app.get(
    "/apps/:app/events",
    {
      schema: { params: AppParams, querystring: ListEventsQuery, response: { 200: EventPage } },
      config: {
        action: "event.list",
        resourceType,
        anyScope: ["read", "read:all", "admin:read"],
        template: TEMPLATE,
      },
    },
    async (req) => {
      const { after, limit } = req.query;
      req.trellis.policyIds = req.trellis.governed?.policy.readPolicyIds;
      const rows = await listEvents(db, ctxOf(req.trellis), after, limit + 1);
      const more = rows.length > limit;
      let items = more ? rows.slice(0, limit) : rows;
      const nextAfter = more ? (items.at(-1)?.seq ?? null) : null;
      // Custom policies have no SQL form: Cedar checks them on each row RLS let through.
      if (req.trellis.governed?.policy.customIds.length) {
        items = items.filter(
          (e) =>
            decideOn(req.trellis, "read", {
              id: e.id,
              owner: e.author_id,
              labels: Object.entries(e.labels)
                .map(([k, v]) => `${k}=${v}`)
                .sort(),
              reviewer: null,
            }).decision === "allow",
        );
      }
      await audit.record(auditContext(req.trellis), { action: "event.list", resourceType });
      req.trellis.audited = true;
      return { items, next_after: nextAfter };
    },
  );
};
