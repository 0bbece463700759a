import { idPattern } from "@trellis/contracts";
import type { FastifyRequest } from "fastify";
import { TrellisError } from "../lib/errors";
import type { AdminCredentials } from "../modules/admin/admin-credentials";
import { bearer, tokenInQuery } from "./context";

const APP_ID = idPattern("app");

/**
 * onRequest hook of every /admin/v1 route: a valid credential (401 otherwise) holding a role
 * the route accepts (`config.roles`, default admin; 403 role_missing otherwise).
 */
export const adminAuth = (creds: AdminCredentials) => async (req: FastifyRequest) => {
  const appId = (req.params as { app?: unknown } | undefined)?.app;
  if (typeof appId === "string" && APP_ID.test(appId)) req.trellis.appId = appId;
  if (tokenInQuery(req.url)) throw new TrellisError("token_in_query");
  const token = bearer(req.headers.authorization);
  if (!token) throw new TrellisError("auth_required");
  const who = await creds.verify(token);
  if (!who) throw new TrellisError("admin_token_invalid");
  req.trellis.actorId = who.actorId;
  req.trellis.actorRole = "admin";
  req.trellis.adminRoles = who.roles;
  const accepted = req.routeOptions.config.roles ?? ["admin"];
  if (!accepted.some((r) => who.roles.includes(r))) throw new TrellisError("role_missing");
};
