import {
  AppParams,
  CreateTokenRequest,
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
import type { TokensService } from "./tokens.service";

export const tokensRoutes: FastifyPluginAsyncZod<{
  apps: AppsService;
  tokens: TokensService;
  revocations: RevocationsService;
  audit: Pick<AuditService, "record">;
}> = async (app, { apps, tokens, revocations, audit }) => {
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
      const governed = await apps.governedApp(req.params.app);
      if (!governed) throw new TrellisError("app_not_found");
      if (governed.app.status !== "active") throw new TrellisError("forbidden");
      const issued = await tokens.issue(
        auditContext(req.trellis),
        { id: governed.app.id, templateScopes: governed.template.scopes },
        req.body,
      );
      req.trellis.audited = true;
      return reply.code(201).send(issued);
    },
  );
};
