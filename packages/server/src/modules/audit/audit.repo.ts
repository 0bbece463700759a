import type { ActorRole, AuditAction, AuditEvent, AuditOutcome } from "@trellis/contracts";
import type { Queryable } from "../../db/db";

export interface NewAuditEvent {
  event_id: string;
  occurred_at: Date;
  actor_id: string | null;
  actor_role: ActorRole;
  action: AuditAction;
  resource_type: string;
  resource_id: string | null;
  app_id: string | null;
  token_id: string | null;
  policy_ids: string[];
  outcome: AuditOutcome;
  error_code: string | null;
  request_id: string;
  /** What changed (a transition's from/to, an upgrade's steps); null when nothing did. */
  diff: Record<string, unknown> | null;
}

export async function insertEvent(q: Queryable, e: NewAuditEvent): Promise<void> {
  await q.query(
    `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
       resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id, diff)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)`,
    [
      e.event_id,
      e.occurred_at,
      e.actor_id,
      e.actor_role,
      e.action,
      e.resource_type,
      e.resource_id,
      e.app_id,
      e.token_id,
      e.policy_ids,
      e.outcome,
      e.error_code,
      e.request_id,
      e.diff === null ? null : JSON.stringify(e.diff),
    ],
  );
}

/**
 * Many events in one statement, in array order (their seq follows it): one round trip and one
 * commit for a whole batch.
 */
export async function insertEvents(q: Queryable, events: NewAuditEvent[]): Promise<void> {
  await q.query("SELECT trellis.audit_append($1::jsonb)", [JSON.stringify(events)]);
}

export interface EventFilter {
  app?: string;
  actor?: string;
  action?: string;
  outcome?: string;
  beforeSeq?: number;
  limit: number;
}

interface Row extends Omit<AuditEvent, "timestamp"> {
  occurred_at: Date;
}

/** Newest first; filters are optional equalities, the cursor is the last seq seen. */
export async function listEvents(q: Queryable, f: EventFilter): Promise<AuditEvent[]> {
  const { rows } = await q.query<Row>(
    `SELECT seq, event_id, occurred_at, actor_id, actor_role, action, resource_type, resource_id,
            app_id, token_id, policy_ids, outcome, error_code, request_id, diff
       FROM trellis.audit_events
      WHERE ($1::text IS NULL OR app_id = $1) AND ($2::text IS NULL OR actor_id = $2)
        AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR outcome = $4)
        AND ($5::bigint IS NULL OR seq < $5)
      ORDER BY seq DESC LIMIT $6`,
    [
      f.app ?? null,
      f.actor ?? null,
      f.action ?? null,
      f.outcome ?? null,
      f.beforeSeq ?? null,
      f.limit,
    ],
  );
  return rows.map(({ occurred_at, ...r }) => ({ ...r, timestamp: occurred_at.toISOString() }));
}
