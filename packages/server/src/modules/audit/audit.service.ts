import type { ActorRole, AuditAction, AuditPage, AuditQuery } from "@trellis/contracts";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { decodeCursor, encodeCursor } from "../../lib/cursor";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { insertEvent, listEvents } from "./audit.repo";

/** Who did it and in which request: what every audit event carries besides the action. */
export interface AuditContext {
  requestId: string;
  actorId: string | null;
  actorRole: ActorRole;
  appId: string | null;
  tokenId: string | null;
}

export interface AuditRecord {
  action: AuditAction;
  resourceType: string;
  resourceId?: string | null;
  outcome?: "allowed" | "denied" | "error";
  errorCode?: string | null;
}

// Attacker-controlled strings (URL ids, subjects) are bounded before they reach the log.
const clip = (v: string | null | undefined) => (v == null ? null : v.slice(0, 200));

export const auditService = ({ db, clock }: { db: Db; clock: Clock }) => {
  /**
   * Writes one event. Pass the transaction that makes the change so the two commit together;
   * without one, the event is written on its own (denials, reads).
   */
  async function record(ctx: AuditContext, rec: AuditRecord, tx: Queryable = db): Promise<void> {
    await insertEvent(tx, {
      event_id: newId("event"),
      occurred_at: clock.now(),
      actor_id: clip(ctx.actorId),
      actor_role: ctx.actorRole,
      action: rec.action,
      resource_type: rec.resourceType,
      resource_id: clip(rec.resourceId),
      app_id: clip(ctx.appId),
      token_id: ctx.tokenId,
      policy_id: null,
      outcome: rec.outcome ?? "allowed",
      error_code: rec.errorCode ?? null,
      request_id: ctx.requestId,
    });
  }

  async function list(query: AuditQuery): Promise<AuditPage> {
    let beforeSeq: number | undefined;
    if (query.cursor) {
      const c = decodeCursor(query.cursor, { seq: "number" });
      if (!c)
        throw new TrellisError("invalid_request", [
          { path: "/cursor", message: "is not a cursor from this API" },
        ]);
      beforeSeq = c.seq as number;
    }
    const items = await listEvents(db, { ...query, beforeSeq, limit: query.limit + 1 });
    const more = items.length > query.limit;
    const page = more ? items.slice(0, query.limit) : items;
    const last = page.at(-1);
    return { items: page, next_cursor: more && last ? encodeCursor({ seq: last.seq }) : null };
  }

  return { record, list };
};

export type AuditService = ReturnType<typeof auditService>;
