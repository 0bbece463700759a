import {
  AppParams,
  ApprovalPending,
  CreateTokenRequest,
  RenewTokenRequest,
  TokenIssued,
  TokenList,
  TokenParams,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { auditContext } from "../../http/context";
import { TrellisError } from "../../lib/errors";
import type { AppsService } from "../apps/apps.service";
import type { AuditService } from "../audit/audit.service";
import type { RevocationsService } from "./revocations";
import type { IssuingApp, TokensService } from "./tokens.service";

export const tokensRoutes: FastifyPluginAsyncZod<{
  apps: AppsService;
  tokens: TokensService;
  revocations: RevocationsService;
  audit: Pick<AuditService, "record">;
}> = async (app, { apps, tokens, revocations, audit }) => {
  async function issuingApp(id: string): Promise<IssuingApp> {
    const governed = await apps.governedApp(id);
    if (!governed) throw new TrellisError("app_not_found");
    return {
      id: governed.app.id,
      templateScopes: governed.template.scopes,
      environment: governed.app.environment,
      status: governed.app.status,
    };
  }

  app.get(
    "/apps/:app/tokens",
    {
      schema: { params: AppParams, response: { 200: TokenList } },
      config: { action: "token.list", resourceType: "token" },
    },
    async (req) => {
      await apps.get(req.params.app); // app_not_found for an unknown app
      const items = await revocations.list(req.params.app);
      await audit.record(auditContext(req.trellis), {
        action: "token.list",
        resourceType: "token",
      });
      return { items };
    },
  );

  app.delete(
    "/apps/:app/tokens/:token_id",
    {
      schema: { params: TokenParams, response: { 204: z.null() } },
      config: { action: "token.revoke", resourceType: "token", resourceParam: "token_id" },
    },
    async (req, reply) => {
      await revocations.revoke(auditContext(req.trellis), req.params.app, req.params.token_id);
      req.trellis.audited = true;
      return reply.code(204).send(null);
    },
  );

  app.delete(
    "/apps/:app/tokens",
    {
      schema: { params: AppParams, response: { 204: z.null() } },
      config: { action: "token.revoke_all", resourceType: "app", resourceParam: "app" },
    },
    async (req, reply) => {
      await revocations.revokeAll(auditContext(req.trellis), req.params.app);
      req.trellis.audited = true;
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/apps/:app/tokens",
    {
      schema: { params: AppParams, body: CreateTokenRequest, response: { 201: TokenIssued } },
      config: { action: "token.create", resourceType: "token" },
    },
    async (req, reply) => {
      const issued = await tokens.issue(
        auditContext(req.trellis),
        await issuingApp(req.params.app),
        req.body,
      );
      req.trellis.audited = true;
      return reply.code(201).send(issued);
    },
  );

  app.post(
    "/apps/:app/tokens/:token_id/renew",
    {
      schema: {
        params: TokenParams,
        body: RenewTokenRequest,
        response: { 201: TokenIssued, 202: ApprovalPending },
      },
      config: { action: "token.renew", resourceType: "token", resourceParam: "token_id" },
    },
    async (req, reply) => {
      const result = await tokens.renew(
        { ...auditContext(req.trellis), tokenId: req.params.token_id },
        await issuingApp(req.params.app),
        req.params.token_id,
        req.body,
      );
      req.trellis.audited = true;
      if ("pending" in result) return reply.code(202).send(result.pending);
      return reply.code(201).send(result.issued);
    },
  );
};
