import type { ApprovalRequestRecord, RequestState } from "@trellis/contracts";
import type { Queryable } from "../db/db";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import { ctxParam, type GatewayCtx } from "./gateway-ctx";
import type { RecordFacts } from "./governed";

interface Row {
  id: string;
  app_id: string;
  requester_id: string;
  assigned_reviewer: string;
  payload: Record<string, unknown>;
  state: RequestState;
  labels: string[];
  created_ms: number;
  updated_ms: number;
}

const COLUMNS = `id, app_id, requester_id, assigned_reviewer, payload, state::text AS state, labels,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
  (extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms`;

/** A stored request, with what Cedar decides on. */
export interface RequestRecord {
  request: ApprovalRequestRecord;
  facts: RecordFacts;
}

const toRecord = (r: Row): RequestRecord => ({
  request: {
    id: r.id,
    app_id: r.app_id,
    requester_id: r.requester_id,
    assigned_reviewer: r.assigned_reviewer,
    payload: r.payload,
    state: r.state,
    labels: setToLabels(r.labels),
    created_at: isoFromMs(r.created_ms),
    updated_at: isoFromMs(r.updated_ms),
  },
  facts: {
    id: r.id,
    owner: r.requester_id,
    labels: r.labels,
    reviewer: r.assigned_reviewer,
    state: r.state,
  },
});

export async function createRequest(
  q: Queryable,
  ctx: GatewayCtx,
  r: { id: string; reviewer: string; payload: Record<string, unknown> },
): Promise<void> {
  await q.query(
    "SELECT trellis.gw_approval_queue_create($1::trellis.gw_ctx, $2::uuid, $3, $4::jsonb)",
    [ctxParam(ctx), r.id, r.reviewer, JSON.stringify(r.payload)],
  );
}

export async function listRequests(
  q: Queryable,
  ctx: GatewayCtx,
  f: { role?: "requester" | "reviewer"; state?: RequestState; beforeId?: string; limit: number },
): Promise<RequestRecord[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_approval_queue_list($1::trellis.gw_ctx, $2, $3, $4::uuid, $5)`,
    [ctxParam(ctx), f.role ?? null, f.state ?? null, f.beforeId ?? null, f.limit],
  );
  return rows.map(toRecord);
}

export async function getRequest(q: Queryable, ctx: GatewayCtx, id: string) {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_approval_queue_get($1::trellis.gw_ctx, $2::uuid)`,
    [ctxParam(ctx), id],
  );
  return rows[0] && toRecord(rows[0]);
}

/** Moves a request from `from` to `to`; undefined when it was no longer at `from` (or RLS refused). */
export async function moveRequest(
  q: Queryable,
  ctx: GatewayCtx,
  m: { id: string; from: RequestState; to: RequestState; action: string },
) {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_approval_queue_move($1::trellis.gw_ctx, $2::uuid, $3, $4, $5)`,
    [ctxParam(ctx), m.id, m.from, m.to, m.action],
  );
  return rows[0] && toRecord(rows[0]);
}
