import { Entry, EntryParams, PutEntryRequest } from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Db } from "../db/db";
import { auditContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { TrellisError } from "../lib/errors";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { PolicyEngine } from "../modules/policy/engine";
import { ctxParam } from "./gateway-ctx";
import { governedHelpers } from "./governed";

const TEMPLATE = "ttl-cache";
/** When a manifest names no quota. */
const DEFAULT_QUOTA = 10_000;

interface Row {
  key: string;
  app_id: string;
  owner_id: string;
  value: Record<string, unknown>;
  labels: string[];
  expires_ms: number;
  updated_ms: number;
}

/** The gateway routes of the ttl-cache template. Auth (token, app, template, scope) ran in onRequest. */
export const ttlCacheRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
}> = async (app, { db, clock, audit, engine }) => {
  const { ctxOf, decideOn, newRecord } = governedHelpers({ clock, engine });
  const resourceType = "entry";

  app.put(
    "/apps/:app/entries/:key",
    {
      schema: { params: EntryParams, body: PutEntryRequest, response: { 200: Entry, 201: Entry } },
      config: {
        action: "entry.put",
        resourceType,
        resourceParam: "key",
        anyScope: ["put"],
        template: TEMPLATE,
      },
    },
    async (req, reply) => {
      const governed = req.trellis.governed;
      if (!governed) throw new TrellisError("auth_required"); // unreachable: the hook sets it
      const issues = governed.validatePayload(req.body.value);
      if (issues)
        throw new TrellisError(
          "payload_invalid",
          issues.map((i) => ({
            path: `/value${i.path === "/" ? "" : i.path}`,
            message: i.message,
          })),
        );
      // Cedar on the entry as it will be (the caller's, with the caller's labels); replacing
      // someone else's entry is refused by row-level security (owner-write) as `forbidden`.
      const d = decideOn(req.trellis, "put", newRecord(req.trellis));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const ctx = ctxOf(req.trellis, d.policyIds);
      const expires = new Date(Date.parse(ctx.at) + req.body.ttl_seconds * 1000).toISOString();
      const { rows } = await db.query<{ outcome: "created" | "replaced" | "quota" }>(
        "SELECT trellis.gw_ttl_cache_put($1::trellis.gw_ctx, $2, $3::jsonb, $4::timestamptz, $5) AS outcome",
        [
          ctxParam(ctx),
          req.params.key,
          JSON.stringify(req.body.value),
          expires,
          governed.template.manifest.limits?.records_per_app ?? DEFAULT_QUOTA,
        ],
      );
      req.trellis.audited = true; // the function wrote the event, allowed or quota-denied
      const outcome = rows[0]?.outcome;
      if (outcome === "quota") throw new TrellisError("quota_exceeded");
      return reply.code(outcome === "created" ? 201 : 200).send({
        key: req.params.key,
        app_id: ctx.app_id,
        owner_id: ctx.sub,
        value: req.body.value,
        labels: setToLabels(req.trellis.claims?.labels ?? []),
        expires_at: expires,
        updated_at: ctx.at,
      });
    },
  );

  app.get(
    "/apps/:app/entries/:key",
    {
      schema: { params: EntryParams, response: { 200: Entry } },
      config: {
        action: "entry.get",
        resourceType,
        resourceParam: "key",
        anyScope: ["read", "read:all", "admin:read"],
        template: TEMPLATE,
      },
    },
    async (req) => {
      const { rows } = await db.query<Row>(
        `SELECT key, app_id, owner_id, value, labels,
                (extract(epoch FROM expires_at) * 1000)::float8 AS expires_ms,
                (extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms
           FROM trellis.gw_ttl_cache_get($1::trellis.gw_ctx, $2)`,
        [ctxParam(ctxOf(req.trellis)), req.params.key],
      );
      const r = rows[0];
      if (!r) throw new TrellisError("not_found"); // absent, expired or hidden: one answer
      const d = decideOn(req.trellis, "read", {
        id: r.key,
        owner: r.owner_id,
        labels: r.labels,
        reviewer: null,
      });
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("not_found");
      await audit.record(auditContext(req.trellis), {
        action: "entry.get",
        resourceType,
        resourceId: r.key,
      });
      req.trellis.audited = true;
      return {
        key: r.key,
        app_id: r.app_id,
        owner_id: r.owner_id,
        value: r.value,
        labels: setToLabels(r.labels),
        expires_at: isoFromMs(r.expires_ms),
        updated_at: isoFromMs(r.updated_ms),
      };
    },
  );
};
