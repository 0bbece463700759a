import {
  AddCustomPolicyRequest,
  AddCustomPolicyResult,
  AppParams,
  AppPolicyView,
  ApprovalRequestList,
  CustomPolicyParams,
  ExplainRequest,
  ExplainResponse,
  PolicyBlockList,
  PolicyTestResult,
  SetPolicyBlocksRequest,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { auditContext } from "../../http/context";
import type { AuditService } from "../audit/audit.service";
import { BLOCKS } from "./blocks";
import type { PolicyService } from "./policy.service";

/** The largest policy test suite accepted, in bytes of YAML. */
const SUITE_MAX = 256 * 1024;

export const policyRoutes: FastifyPluginAsyncZod<{
  policy: PolicyService;
  audit: Pick<AuditService, "record">;
}> = async (app, { policy, audit }) => {
  // YAML suites are sent as text; only this plugin accepts it.
  app.addContentTypeParser(
    ["application/yaml", "text/yaml", "text/plain"],
    { parseAs: "string", bodyLimit: SUITE_MAX },
    (_req, body, done) => done(null, body),
  );

  app.get(
    "/policy/blocks",
    {
      schema: { response: { 200: PolicyBlockList } },
      config: { action: "policy.get", resourceType: "policy_block" },
    },
    async (req) => {
      await audit.record(auditContext(req.trellis), {
        action: "policy.get",
        resourceType: "policy_block",
      });
      const example = { read: ["read"], write: ["create", "delete"], creates: ["create"] };
      return {
        items: BLOCKS.map((b) => ({
          id: b.id,
          effect: b.effect,
          title: b.title,
          summary: b.summary,
          cedar: b.cedar(example),
          sql: b.sql,
        })),
      };
    },
  );

  app.get(
    "/apps/:app/policy",
    {
      schema: { params: AppParams, response: { 200: AppPolicyView } },
      config: { action: "policy.get", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const v = await policy.view(req.params.app);
      await audit.record(auditContext(req.trellis), {
        action: "policy.get",
        resourceType: "app",
        resourceId: req.params.app,
      });
      return v;
    },
  );

  app.put(
    "/apps/:app/policy/blocks",
    {
      schema: { params: AppParams, body: SetPolicyBlocksRequest, response: { 200: AppPolicyView } },
      config: { action: "policy.update", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const v = await policy.setBlocks(auditContext(req.trellis), req.params.app, req.body.blocks);
      req.trellis.audited = true;
      return v;
    },
  );

  app.post(
    "/apps/:app/policy/custom",
    {
      schema: {
        params: AppParams,
        body: AddCustomPolicyRequest,
        response: { 201: AddCustomPolicyResult, 202: AddCustomPolicyResult },
      },
      config: { action: "policy.custom_add", resourceType: "policy" },
    },
    async (req, reply) => {
      const r = await policy.addCustom(auditContext(req.trellis), req.params.app, req.body);
      req.trellis.audited = true;
      return reply.code(r.approval_request_id ? 202 : 201).send(r);
    },
  );

  app.delete(
    "/apps/:app/policy/custom/:policy_id",
    {
      schema: { params: CustomPolicyParams, response: { 204: z.null() } },
      config: {
        action: "policy.custom_remove",
        resourceType: "policy",
        resourceParam: "policy_id",
      },
    },
    async (req, reply) => {
      await policy.removeCustom(auditContext(req.trellis), req.params.app, req.params.policy_id);
      req.trellis.audited = true;
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/apps/:app/policy/explain",
    {
      schema: { params: AppParams, body: ExplainRequest, response: { 200: ExplainResponse } },
      config: { action: "policy.explain", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const r = await policy.explain(req.params.app, req.body);
      await audit.record(
        { ...auditContext(req.trellis), policyIds: r.determining_policies.map((p) => p.id) },
        { action: "policy.explain", resourceType: "app", resourceId: req.params.app },
      );
      return r;
    },
  );

  app.post(
    "/apps/:app/policy/test",
    {
      schema: {
        params: AppParams,
        body: z.string().max(SUITE_MAX),
        response: { 200: PolicyTestResult },
      },
      config: { action: "policy.test", resourceType: "app", resourceParam: "app" },
    },
    async (req) => {
      const r = await policy.test(req.params.app, req.body);
      await audit.record(auditContext(req.trellis), {
        action: "policy.test",
        resourceType: "app",
        resourceId: req.params.app,
      });
      return r;
    },
  );

  app.get(
    "/apps/:app/approval-requests",
    {
      schema: { params: AppParams, response: { 200: ApprovalRequestList } },
      config: { action: "approval.list", resourceType: "approval_request" },
    },
    async (req) => {
      const items = await policy.approvals(req.params.app);
      await audit.record(auditContext(req.trellis), {
        action: "approval.list",
        resourceType: "approval_request",
      });
      return { items };
    },
  );
};
