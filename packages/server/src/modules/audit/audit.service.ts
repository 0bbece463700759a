import type { ActorRole, AuditAction, AuditPage, AuditQuery } from "@trellis/contracts";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { encodeCursor, seqFromCursor } from "../../lib/cursor";
import { newId } from "../../lib/ids";
import { insertEvent, insertEvents, listEvents, type NewAuditEvent } from "./audit.repo";

/** Who did it and in which request: what every audit event carries besides the action. */
export interface AuditContext {
  requestId: string;
  actorId: string | null;
  actorRole: ActorRole;
  appId: string | null;
  tokenId: string | null;
  /** The policies that determined the decision this event records. */
  policyIds?: readonly string[];
}

export interface AuditRecord {
  action: AuditAction;
  resourceType: string;
  resourceId?: string | null;
  outcome?: "allowed" | "denied" | "error";
  errorCode?: string | null;
  policyIds?: readonly string[];
  /** What changed, for events that record a change (bounded: 8 KB as JSON). */
  diff?: Record<string, unknown>;
  /** The event's id, when the caller needs it before the event exists (a statement signing it). */
  eventId?: string;
}

// Attacker-controlled strings (URL ids, subjects) are bounded before they reach the log.
const clip = (v: string | null | undefined) => (v == null ? null : v.slice(0, 200));

/** Most events one group-commit statement carries. */
const MAX_BATCH = 500;
/**
 * A small batch waits this long for company before it is written: fewer, larger commits.
 * Measured on the read bench (16 connections): batches grow from ~4 to ~20 events.
 */
const LINGER_MS = 1;
const LINGER_BELOW = 16;

export const auditService = ({ db, clock }: { db: Db; clock: Clock }) => {
  // Group commit for events that are not part of a data change (reads, denials, admin reads).
  // A caller's promise resolves only once its event is committed, so nothing is answered
  // unaudited; meanwhile concurrent requests share one INSERT and one commit. One batch is in
  // flight at a time: whatever queues during it goes in the next.
  let queue: Array<{ event: NewAuditEvent; done: (err?: unknown) => void }> = [];
  let flushing: Promise<void> | undefined;

  async function flushLoop(): Promise<void> {
    while (queue.length > 0) {
      if (queue.length < LINGER_BELOW) await new Promise((r) => setTimeout(r, LINGER_MS));
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(batch.length);
      try {
        await insertEvents(
          db,
          batch.map((b) => b.event),
        );
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
    flushing = undefined;
  }

  function enqueue(event: NewAuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      queue.push({ event, done: (err) => (err === undefined ? resolve() : reject(err)) });
      flushing ??= flushLoop();
    });
  }

  /**
   * Writes one event. Pass the transaction that makes a data change so the two commit
   * together; without one, the event goes through the group commit and the promise resolves
   * when it is durable. Returns the event's id.
   */
  async function record(ctx: AuditContext, rec: AuditRecord, tx?: Queryable): Promise<string> {
    const event: NewAuditEvent = {
      event_id: rec.eventId ?? newId("event"),
      occurred_at: clock.now(),
      actor_id: clip(ctx.actorId),
      actor_role: ctx.actorRole,
      action: rec.action,
      resource_type: rec.resourceType,
      resource_id: clip(rec.resourceId),
      app_id: clip(ctx.appId),
      token_id: ctx.tokenId,
      policy_ids: [...(rec.policyIds ?? ctx.policyIds ?? [])],
      outcome: rec.outcome ?? "allowed",
      error_code: rec.errorCode ?? null,
      request_id: ctx.requestId,
      diff: rec.diff ?? null,
    };
    if (tx) await insertEvent(tx, event);
    else await enqueue(event);
    return event.event_id;
  }

  /** Waits until every queued event is written (shutdown). */
  const drain = async () => {
    while (flushing) await flushing;
  };

  async function list(query: AuditQuery): Promise<AuditPage> {
    const beforeSeq = seqFromCursor(query.cursor);
    const items = await listEvents(db, { ...query, beforeSeq, limit: query.limit + 1 });
    const more = items.length > query.limit;
    const page = more ? items.slice(0, query.limit) : items;
    const last = page.at(-1);
    return { items: page, next_cursor: more && last ? encodeCursor({ seq: last.seq }) : null };
  }

  return { record, list, drain };
};

export type AuditService = ReturnType<typeof auditService>;
