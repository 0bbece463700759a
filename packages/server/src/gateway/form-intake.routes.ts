import {
  AppParams,
  CreateSubmissionRequest,
  ListSubmissionsQuery,
  Submission,
  SubmissionPage,
  SubmissionParams,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Db } from "../db/db";
import { auditContext, type RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { decodeCursor, encodeCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newId, newRecordId } from "../lib/ids";
import type { AuditService } from "../modules/audit/audit.service";
import {
  createSubmission,
  deleteSubmission,
  type GatewayCtx,
  getSubmission,
  listSubmissions,
} from "./form-intake.repo";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The gateway routes of the form-intake template. Auth (token, app, scope) ran in onRequest. */
export const formIntakeRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
}> = async (app, { db, clock, audit }) => {
  const ctxOf = (c: RequestContext): GatewayCtx => {
    const claims = c.claims;
    if (!claims) throw new TrellisError("auth_required"); // unreachable: the hook sets it
    return {
      app_id: claims.appId,
      sub: claims.subject,
      scopes: claims.scopeString,
      token_id: claims.tokenId,
      event_id: newId("event"),
      request_id: c.requestId,
      at: clock.now().toISOString(),
    };
  };
  const resourceType = "submission";

  app.post(
    "/apps/:app/submissions",
    {
      schema: { params: AppParams, body: CreateSubmissionRequest, response: { 201: Submission } },
      config: { action: "submission.create", resourceType, anyScope: ["create"] },
    },
    async (req, reply) => {
      const issues = req.trellis.governed?.validatePayload(req.body.payload);
      if (issues)
        throw new TrellisError(
          "payload_invalid",
          issues.map((i) => ({
            path: `/payload${i.path === "/" ? "" : i.path}`,
            message: i.message,
          })),
        );
      const stored = await createSubmission(db, ctxOf(req.trellis), {
        id: newRecordId(),
        form_id: req.body.form_id,
        payload: req.body.payload,
      });
      req.trellis.audited = true;
      return reply.code(201).send(stored);
    },
  );

  app.get(
    "/apps/:app/submissions",
    {
      schema: {
        params: AppParams,
        querystring: ListSubmissionsQuery,
        response: { 200: SubmissionPage },
      },
      config: { action: "submission.list", resourceType, anyScope: ["read", "read:all"] },
    },
    async (req) => {
      const { limit, cursor, form_id } = req.query;
      let beforeId: string | undefined;
      if (cursor) {
        const c = decodeCursor(cursor, { id: "string" });
        if (!c || !UUID.test(c.id as string))
          throw new TrellisError("invalid_request", [
            { path: "/cursor", message: "is not a cursor from this API" },
          ]);
        beforeId = c.id as string;
      }
      const rows = await listSubmissions(db, ctxOf(req.trellis), {
        formId: form_id,
        beforeId,
        limit: limit + 1,
      });
      // Reads are audited through the group commit: durable before the response leaves.
      await audit.record(auditContext(req.trellis), { action: "submission.list", resourceType });
      req.trellis.audited = true;
      const more = rows.length > limit;
      const items = more ? rows.slice(0, limit) : rows;
      const last = items.at(-1);
      return { items, next_cursor: more && last ? encodeCursor({ id: last.id }) : null };
    },
  );

  app.get(
    "/apps/:app/submissions/:id",
    {
      schema: { params: SubmissionParams, response: { 200: Submission } },
      config: { action: "submission.get", resourceType, anyScope: ["read", "read:all"] },
    },
    async (req) => {
      const found = await getSubmission(db, ctxOf(req.trellis), req.params.id);
      if (!found) throw new TrellisError("not_found"); // audited as a denial by the error handler
      await audit.record(auditContext(req.trellis), {
        action: "submission.get",
        resourceType,
        resourceId: found.id,
      });
      req.trellis.audited = true;
      return found;
    },
  );

  app.delete(
    "/apps/:app/submissions/:id",
    {
      schema: { params: SubmissionParams, response: { 204: z.null() } },
      config: { action: "submission.delete", resourceType, anyScope: ["delete"] },
    },
    async (req, reply) => {
      const deleted = await deleteSubmission(db, ctxOf(req.trellis), req.params.id);
      req.trellis.audited = true;
      if (!deleted) throw new TrellisError("not_found");
      return reply.code(204).send(null);
    },
  );
};
