import { idPattern } from "@trellis/contracts";
import type { FastifyRequest } from "fastify";
import { bearer, tokenInQuery } from "../http/context";
import { TrellisError } from "../lib/errors";
import type { AppsService } from "../modules/apps/apps.service";
import type { RevocationsService } from "../modules/tokens/revocations";
import type { TokensService } from "../modules/tokens/tokens.service";

const APP_ID = idPattern("app");

/**
 * onRequest hook of every gateway route, before the body is read: token → app → scope.
 * Who the caller is gets recorded as soon as it is known, so a denial names the actor.
 */
export const gatewayAuth =
  ({
    tokens,
    apps,
    revocations,
  }: {
    tokens: TokensService;
    apps: Pick<AppsService, "governedApp">;
    revocations: Pick<RevocationsService, "isRevoked">;
  }) =>
  async (req: FastifyRequest) => {
    const ctx = req.trellis;
    const appId = (req.params as { app?: unknown }).app;
    if (typeof appId === "string" && APP_ID.test(appId)) ctx.appId = appId;
    if (tokenInQuery(req.url)) throw new TrellisError("token_in_query");
    const raw = bearer(req.headers.authorization);
    if (!raw) throw new TrellisError("auth_required");
    const result = await tokens.verify(raw, typeof appId === "string" ? appId : "");
    const claims = result.claims;
    if (claims) {
      ctx.actorId = claims.subject;
      ctx.actorRole = "app_user";
      ctx.tokenId = claims.tokenId;
    }
    if (!result.ok) throw new TrellisError(result.code);
    const governed = await apps.governedApp(result.claims.appId);
    if (!governed) throw new TrellisError("app_not_found");
    // Before revocation: pausing also revokes the app's tokens, and "paused" says more.
    if (governed.app.status === "paused") throw new TrellisError("app_paused");
    if (governed.app.status !== "active") throw new TrellisError("app_not_active");
    // In memory, on every request (the signature check above may be cached; this never is).
    if (revocations.isRevoked(result.claims)) throw new TrellisError("token_revoked");
    // An events call to a form-intake app (and the like): that resource is not the app's.
    const template = req.routeOptions.config.template;
    // (A custom template answers on its base template's routes.)
    if (template && governed.template.base !== template)
      throw new TrellisError("resource_not_in_template");
    // We never issue such a token; one that arrives was not made by this server's rules.
    for (const s of result.claims.scopes) {
      if (!governed.template.scopes.has(s)) throw new TrellisError("token_scope_unknown");
    }
    const need = req.routeOptions.config.anyScope;
    if (need && !need.some((s) => result.claims.scopes.has(s)))
      throw new TrellisError("scope_missing");
    ctx.claims = result.claims;
    ctx.governed = governed;
  };
