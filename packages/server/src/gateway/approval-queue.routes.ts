import {
  AppParams,
  ApprovalRequestRecord,
  CreateRequestRequest,
  ListRequestsQuery,
  RequestPage,
  RequestParams,
  type RequestState,
  TransitionRequest,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Db } from "../db/db";
import type { RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { recordIdFromCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newRecordId } from "../lib/ids";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { StateMachine } from "../modules/catalog/catalog";
import type { PolicyEngine } from "../modules/policy/engine";
import {
  createRequest,
  getRequest,
  listRequests,
  moveRequest,
  type RequestRecord,
} from "./approval-queue.repo";
import { governedHelpers } from "./governed";

const TEMPLATE = "approval-queue";

/** The gateway routes of the approval-queue template. Auth (token, app, template, scope) ran in onRequest. */
export const approvalQueueRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
}> = async (app, { db, clock, audit, engine }) => {
  const { governedOf, ctxOf, decideOn, newRecord, decideFound, listPage, auditedRead } =
    governedHelpers({ clock, engine, audit });
  const resourceType = "request";
  const readScopes = ["read", "read:all", "admin:read"];

  const machineOf = (c: RequestContext): StateMachine => {
    const sm = governedOf(c).governed.template.manifest.state_machine;
    if (!sm) throw new TrellisError("internal"); // the catalog gives approval-queue one
    return sm;
  };

  /** The request under RLS (hidden like RLS hides it when Cedar would not let this caller read). */
  const visible = async (c: RequestContext, id: string): Promise<RequestRecord> => {
    const rec = await getRequest(db, ctxOf(c), id);
    if (!rec) throw new TrellisError("not_found");
    decideFound(c, "read", rec.facts);
    return rec;
  };

  /** The states this caller may move `rec` to now: legal from its state, scope held, policy allows. */
  const movesFor = (c: RequestContext, sm: StateMachine, rec: RequestRecord): string[] => {
    const { claims } = governedOf(c);
    return (sm.transitions[rec.request.state] ?? []).filter((to) => {
      const action = sm.actions[to];
      return (
        action !== undefined &&
        claims.scopes.has(action) &&
        decideOn(c, action, rec.facts).decision === "allow"
      );
    });
  };

  app.post(
    "/apps/:app/requests",
    {
      schema: {
        params: AppParams,
        body: CreateRequestRequest,
        response: { 201: ApprovalRequestRecord },
      },
      config: { action: "request.create", resourceType, anyScope: ["create"], template: TEMPLATE },
    },
    async (req, reply) => {
      const c = req.trellis;
      const issues = c.governed?.validatePayload(req.body.payload);
      if (issues)
        throw new TrellisError(
          "payload_invalid",
          issues.map((i) => ({
            path: `/payload${i.path === "/" ? "" : i.path}`,
            message: i.message,
          })),
        );
      const reviewer = req.body.assigned_reviewer;
      if (reviewer === c.claims?.subject) throw new TrellisError("reviewer_is_requester");
      const d = decideOn(c, "create", { ...newRecord(c, reviewer), state: "requested" });
      c.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const ctx = ctxOf(c, d.policyIds);
      const id = newRecordId();
      await createRequest(db, ctx, { id, reviewer, payload: req.body.payload });
      c.audited = true;
      return reply.code(201).send({
        id,
        app_id: ctx.app_id,
        requester_id: ctx.sub,
        assigned_reviewer: reviewer,
        payload: req.body.payload,
        state: "requested",
        labels: setToLabels(c.claims?.labels ?? []),
        created_at: ctx.at,
        updated_at: ctx.at,
      });
    },
  );

  app.get(
    "/apps/:app/requests",
    {
      schema: { params: AppParams, querystring: ListRequestsQuery, response: { 200: RequestPage } },
      config: { action: "request.list", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const { limit, cursor, role, state } = req.query;
      const beforeId = recordIdFromCursor(cursor);
      return listPage(req.trellis, {
        limit,
        action: "request.list",
        resourceType,
        fetch: (ctx, n) => listRequests(db, ctx, { role, state, beforeId, limit: n }),
        item: (r) => r.request,
      });
    },
  );

  app.get(
    "/apps/:app/requests/:id",
    {
      schema: { params: RequestParams, response: { 200: ApprovalRequestRecord } },
      config: { action: "request.get", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const rec = await visible(req.trellis, req.params.id);
      await auditedRead(req.trellis, "request.get", resourceType, rec.request.id);
      return rec.request;
    },
  );

  app.post(
    "/apps/:app/requests/:id/transitions",
    {
      schema: {
        params: RequestParams,
        body: TransitionRequest,
        response: { 200: ApprovalRequestRecord },
      },
      config: {
        action: "request.transition",
        resourceType,
        anyScope: ["review", "withdraw"],
        template: TEMPLATE,
      },
    },
    async (req) => {
      const c = req.trellis;
      const sm = machineOf(c);
      const to: RequestState = req.body.to;
      const rec = await visible(c, req.params.id);
      // Out of order (or back to the start): 409 with where this caller can go from here.
      const action = sm.actions[to];
      if (!action || !(sm.transitions[rec.request.state] ?? []).includes(to))
        throw new TrellisError("transition_not_allowed", undefined, movesFor(c, sm, rec));
      if (!governedOf(c).claims.scopes.has(action)) throw new TrellisError("scope_missing");
      const policyIds = decideFound(c, action, rec.facts);
      const moved = await moveRequest(db, ctxOf(c, policyIds), {
        id: rec.request.id,
        from: rec.request.state,
        to,
        action,
      });
      if (moved) {
        c.audited = true;
        return moved.request;
      }
      // Someone else moved it first (concurrent transitions: exactly one wins).
      const now = await visible(c, req.params.id);
      // Still where it was: the database's row policy refused what Cedar allowed.
      if (now.request.state === rec.request.state) throw new TrellisError("policy_denied");
      throw new TrellisError("transition_not_allowed", undefined, movesFor(c, sm, now));
    },
  );
};
