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
  resource_type?: string;
  resource_id?: string;
  from?: string;
  to?: string;
}

/** The WHERE clause of a filter (every field optional), parameters from $1. */
export function filterSql(f: EventFilter): { where: string; params: unknown[] } {
  const params: unknown[] = [];
  const terms: string[] = [];
  const eq = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    params.push(value);
    terms.push(`${column} = $${params.length}`);
  };
  eq("app_id", f.app);
  eq("actor_id", f.actor);
  eq("action", f.action);
  eq("outcome", f.outcome);
  eq("resource_type", f.resource_type);
  eq("resource_id", f.resource_id);
  if (f.from !== undefined) {
    params.push(f.from);
    terms.push(`occurred_at >= $${params.length}::timestamptz`);
  }
  if (f.to !== undefined) {
    params.push(f.to);
    terms.push(`occurred_at < $${params.length}::timestamptz`);
  }
  return { where: terms.length > 0 ? terms.join(" AND ") : "true", params };
}

export const EVENT_LIST_COLUMNS = `seq, event_id, occurred_at, actor_id, actor_role, action,
  resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code, request_id, diff`;

interface Row extends Omit<AuditEvent, "timestamp"> {
  occurred_at: Date;
}

export const toEvent = ({ occurred_at, ...r }: Row): AuditEvent => ({
  ...r,
  timestamp: occurred_at.toISOString(),
});

/** Newest first; filters are optional, the cursor is the last seq seen. */
export async function listEvents(
  q: Queryable,
  f: EventFilter & { beforeSeq?: number; limit: number },
): Promise<AuditEvent[]> {
  const { where, params } = filterSql(f);
  params.push(f.beforeSeq ?? null, f.limit);
  const n = params.length;
  const { rows } = await q.query<Row>(
    `SELECT ${EVENT_LIST_COLUMNS} FROM trellis.audit_events
      WHERE ${where} AND ($${n - 1}::bigint IS NULL OR seq < $${n - 1})
      ORDER BY seq DESC LIMIT $${n}`,
    params,
  );
  return rows.map(toEvent);
}
