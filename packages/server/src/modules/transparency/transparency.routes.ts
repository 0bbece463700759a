import { AuditErasure, AuditErasureRequest } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Db } from "../../db/db";
import { auditContext } from "../../http/context";
import { TrellisError } from "../../lib/errors";
import type { AuditService } from "../audit/audit.service";
import { exportLog } from "./log-export";
import type { TransparencyService } from "./transparency.service";
import type { WitnessService } from "./witness";

const Size = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Public: the newest signed checkpoint and the key that verifies it (no auth, no secrets). */
export const publicTransparencyRoutes: FastifyPluginAsyncZod<{
  log: TransparencyService;
}> = async (app, { log }) => {
  app.get("/audit/checkpoint", async (_req, reply) => {
    // With every cosignature the witnesses returned for it.
    const note = await log.publishedCheckpoint();
    if (!note) throw new TrellisError("not_found");
    return reply.type("text/plain; charset=utf-8").header("cache-control", "no-store").send(note);
  });
  app.get("/audit/key", async (_req, reply) =>
    reply.type("text/plain; charset=utf-8").send(`${log.signer.verifierKey}\n`),
  );
};

/** Control plane: inclusion and consistency proofs. */
export const transparencyRoutes: FastifyPluginAsyncZod<{
  log: TransparencyService;
  audit: Pick<AuditService, "record">;
  db: Db;
}> = async (app, { log, audit, db }) => {
  app.get(
    "/audit/events/:event_id/proof",
    {
      schema: {
        params: z.object({ event_id: z.string().min(1).max(100) }),
        querystring: z.strictObject({ size: Size.optional() }),
      },
      config: { action: "audit.proof", resourceType: "audit_event", resourceParam: "event_id" },
    },
    async (req) => {
      const p = await log.proof(req.params.event_id, req.query.size);
      await audit.record(auditContext(req.trellis), {
        action: "audit.proof",
        resourceType: "audit_event",
        resourceId: req.params.event_id,
      });
      req.trellis.audited = true;
      return p;
    },
  );

  app.get(
    "/audit/log-export",
    { config: { action: "audit.export", resourceType: "audit_log" } },
    async (req, reply) => {
      await audit.record(auditContext(req.trellis), {
        action: "audit.export",
        resourceType: "audit_log",
        diff: { format: "log" },
      });
      req.trellis.audited = true;
      const { stream, done } = exportLog(db);
      done.catch((err) => req.log.warn({ err }, "audit log export ended early"));
      return reply
        .type("application/x-ndjson")
        .header("content-disposition", 'attachment; filename="trellis-audit-log.ndjson"')
        .send(stream);
    },
  );

  // GDPR erasure of one data subject's personal data in the log (see README "Erasure").
  app.post(
    "/audit/erasures",
    {
      schema: { body: AuditErasureRequest, response: { 200: AuditErasure } },
      config: { action: "audit.erase", resourceType: "audit_subject", roles: ["admin"] },
    },
    async (req) => {
      const r = await log.erase(req.body.subject, auditContext(req.trellis));
      req.trellis.audited = true; // the erasure's own event, written with it
      return r;
    },
  );

  app.get(
    "/audit/consistency",
    {
      schema: { querystring: z.strictObject({ from: Size, to: Size }) },
      config: { action: "audit.consistency", resourceType: "audit_log" },
    },
    async (req) => {
      const p = await log.consistency(req.query.from, req.query.to);
      await audit.record(auditContext(req.trellis), {
        action: "audit.consistency",
        resourceType: "audit_log",
      });
      req.trellis.audited = true;
      return p;
    },
  );
};

/**
 * The witness endpoint (C2SP tlog-witness `add-checkpoint`), public like the checkpoint: what it
 * cosigns is checked against the log's key and a consistency proof, so no credential is needed.
 * Registered only when this instance witnesses some log.
 */
export const witnessRoutes: FastifyPluginAsyncZod<{ witness: WitnessService }> = async (
  app,
  { witness },
) => {
  app.addContentTypeParser("text/plain", { parseAs: "string" }, (_req, body, done) =>
    done(null, body),
  );
  app.get("/witness/key", async (_req, reply) =>
    reply.type("text/plain; charset=utf-8").send(`${witness.verifierKey}\n`),
  );
  app.post("/witness/add-checkpoint", async (req, reply) => {
    if (typeof req.body !== "string") throw new TrellisError("unsupported_media_type");
    const answer = await witness.addCheckpoint(req.body);
    return reply
      .code(answer.status)
      .type(answer.status === 409 ? "text/x.tlog.size" : "text/plain; charset=utf-8")
      .send(answer.body);
  });
};
