import { idPattern } from "@trellis/contracts";
import type { FastifyRequest } from "fastify";
import { TrellisError } from "../lib/errors";
import type { AdminCredentials } from "../modules/admin/admin-credentials";
import { bearer, tokenInQuery } from "./context";

const APP_ID = idPattern("app");

/** onRequest hook of every /admin/v1 route: a valid admin bearer token or 401. */
export const adminAuth = (creds: AdminCredentials) => async (req: FastifyRequest) => {
  const appId = (req.params as { app?: unknown } | undefined)?.app;
  if (typeof appId === "string" && APP_ID.test(appId)) req.trellis.appId = appId;
  if (tokenInQuery(req.url)) throw new TrellisError("token_in_query");
  const token = bearer(req.headers.authorization);
  if (!token) throw new TrellisError("auth_required");
  const actor = creds.verify(token);
  if (!actor) throw new TrellisError("admin_token_invalid");
  req.trellis.actorId = actor;
  req.trellis.actorRole = "admin";
};
