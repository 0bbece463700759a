import { AppParams, CreateTokenRequest, TokenIssued } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import { TrellisError } from "../../lib/errors";
import type { AppsService } from "../apps/apps.service";
import type { TokensService } from "./tokens.service";

export const tokensRoutes: FastifyPluginAsyncZod<{
  apps: AppsService;
  tokens: TokensService;
}> = async (app, { apps, tokens }) => {
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
