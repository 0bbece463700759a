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
import { auditContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { encodeCursor, recordIdFromCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newRecordId } from "../lib/ids";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { PolicyEngine } from "../modules/policy/engine";
import {
  createSubmission,
  deleteSubmission,
  getSubmission,
  listSubmissions,
  type SubmissionRecord,
} from "./form-intake.repo";
import { governedHelpers } from "./governed";

const TEMPLATE = "form-intake";

/** A stored submission as the record Cedar decides on. */
const asResource = (r: SubmissionRecord) => ({
  id: r.submission.id,
  owner: r.owner,
  labels: r.labelSet,
  reviewer: r.reviewer,
});

/** The gateway routes of the form-intake template. Auth (token, app, scope) ran in onRequest. */
export const formIntakeRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
}> = async (app, { db, clock, audit, engine }) => {
  const { ctxOf, decideOn, newRecord } = governedHelpers({ clock, engine });
  const resourceType = "submission";

  app.post(
    "/apps/:app/submissions",
    {
      schema: { params: AppParams, body: CreateSubmissionRequest, response: { 201: Submission } },
      config: {
        action: "submission.create",
        resourceType,
        anyScope: ["create"],
        template: TEMPLATE,
      },
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
      const claims = req.trellis.claims;
      const id = newRecordId();
      const reviewer = req.body.assigned_reviewer ?? null;
      const d = decideOn(req.trellis, "create", newRecord(req.trellis, reviewer));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const stored = await createSubmission(
        db,
        ctxOf(req.trellis, d.policyIds),
        { id, form_id: req.body.form_id, payload: req.body.payload, assigned_reviewer: reviewer },
        setToLabels(claims?.labels ?? []),
      );
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
      config: {
        action: "submission.list",
        resourceType,
        anyScope: ["read", "read:all", "admin:read"],
        template: TEMPLATE,
      },
    },
    async (req) => {
      const { limit, cursor, form_id } = req.query;
      const beforeId = recordIdFromCursor(cursor);
      const governed = req.trellis.governed;
      if (!governed) throw new TrellisError("auth_required"); // unreachable: the hook sets it
      // The row filter is made of the app's read policies (row-level security applies it).
      req.trellis.policyIds = governed.policy.readPolicyIds;
      const rows = await listSubmissions(db, ctxOf(req.trellis), {
        formId: form_id,
        beforeId,
        limit: limit + 1,
      });
      const more = rows.length > limit;
      let records = more ? rows.slice(0, limit) : rows;
      const cursorId = more ? records.at(-1)?.submission.id : undefined;
      // Custom policies have no SQL form: Cedar checks them on each row RLS let through (they
      // can only narrow, so a page may come back short; the cursor still moves on).
      if (governed.policy.customIds.length > 0) {
        records = records.filter(
          (r) => decideOn(req.trellis, "read", asResource(r)).decision === "allow",
        );
      }
      // Reads are audited through the group commit: durable before the response leaves.
      await audit.record(auditContext(req.trellis), { action: "submission.list", resourceType });
      req.trellis.audited = true;
      return {
        items: records.map((r) => r.submission),
        next_cursor: cursorId ? encodeCursor({ id: cursorId }) : null,
      };
    },
  );

  app.get(
    "/apps/:app/submissions/:id",
    {
      schema: { params: SubmissionParams, response: { 200: Submission } },
      config: {
        action: "submission.get",
        resourceType,
        anyScope: ["read", "read:all", "admin:read"],
        template: TEMPLATE,
      },
    },
    async (req) => {
      const found = await getSubmission(db, ctxOf(req.trellis), req.params.id);
      if (!found) throw new TrellisError("not_found"); // audited as a denial by the error handler
      // Row-level security let it through; Cedar names the policies (and checks custom ones).
      const d = decideOn(req.trellis, "read", asResource(found));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("not_found"); // hidden, like RLS hides
      await audit.record(auditContext(req.trellis), {
        action: "submission.get",
        resourceType,
        resourceId: found.submission.id,
      });
      req.trellis.audited = true;
      return found.submission;
    },
  );

  app.delete(
    "/apps/:app/submissions/:id",
    {
      schema: { params: SubmissionParams, response: { 204: z.null() } },
      config: {
        action: "submission.delete",
        resourceType,
        anyScope: ["delete"],
        template: TEMPLATE,
      },
    },
    async (req, reply) => {
      // The record first (under RLS, as the caller): Cedar decides on it and names the
      // policies, custom ones included; the delete itself runs under RLS again.
      const found = await getSubmission(db, ctxOf(req.trellis), req.params.id);
      if (!found) throw new TrellisError("not_found");
      const d = decideOn(req.trellis, "delete", asResource(found));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const deleted = await deleteSubmission(db, ctxOf(req.trellis, d.policyIds), req.params.id);
      req.trellis.audited = true;
      if (!deleted) throw new TrellisError("not_found");
      return reply.code(204).send(null);
    },
  );
};
