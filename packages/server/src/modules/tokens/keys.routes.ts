import { Jwks, RotatedKey } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { auditContext } from "../../http/context";
import type { SigningKeys } from "./keys";

/** `POST /admin/v1/keys/rotate` (registered under the admin prefix and its auth hook). */
export const keysAdminRoutes: FastifyPluginAsyncZod<{ keys: SigningKeys }> = async (
  app,
  { keys },
) => {
  app.post(
    "/keys/rotate",
    {
      schema: { response: { 201: RotatedKey } },
      config: { action: "key.rotate", resourceType: "signing_key" },
    },
    async (req, reply) => {
      const rotated = await keys.rotate(auditContext(req.trellis));
      req.trellis.audited = true;
      return reply.code(201).send(rotated);
    },
  );
};

/**
 * `GET /.well-known/jwks.json`: public, like /healthz: the keys that verify app tokens, for
 * anyone who checks a token offline. Not audited (no caller data, no app); cached in memory
 * and by clients.
 */
export const jwksRoutes: FastifyPluginAsyncZod<{ keys: SigningKeys }> = async (app, { keys }) => {
  app.get(
    "/.well-known/jwks.json",
    { schema: { response: { 200: Jwks } } },
    async (_req, reply) => {
      reply.header("cache-control", "public, max-age=300");
      return keys.jwks();
    },
  );
};
