import type { LogEvent } from "@trellis/contracts";
import type { Queryable } from "../db/db";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import { ctxParam, type GatewayCtx } from "./gateway-ctx";

interface Row {
  id: string;
  app_id: string;
  seq: number;
  type: string;
  author_id: string;
  data: Record<string, unknown>;
  labels: string[];
  created_ms: number;
}

const COLUMNS =
  "id, app_id, seq, type, author_id, data, labels, (extract(epoch FROM created_at) * 1000)::float8 AS created_ms";

const toEvent = (r: Row): LogEvent => ({
  id: r.id,
  app_id: r.app_id,
  seq: Number(r.seq),
  type: r.type,
  author_id: r.author_id,
  data: r.data,
  labels: setToLabels(r.labels),
  created_at: isoFromMs(r.created_ms),
});

/** One statement: the next number, the event, its audit event. Returns the event's number. */
export async function appendEvent(
  q: Queryable,
  ctx: GatewayCtx,
  e: { id: string; type: string; data: Record<string, unknown> },
): Promise<number> {
  const { rows } = await q.query<{ seq: number }>(
    "SELECT trellis.gw_event_log_append($1::trellis.gw_ctx, $2::uuid, $3, $4::jsonb) AS seq",
    [ctxParam(ctx), e.id, e.type, JSON.stringify(e.data)],
  );
  return Number(rows[0]?.seq);
}

/** Events after `after`, in order, as row-level security lets this caller see them. */
export async function listEvents(
  q: Queryable,
  ctx: GatewayCtx,
  after: number,
  limit: number,
): Promise<LogEvent[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_event_log_list($1::trellis.gw_ctx, $2, $3)`,
    [ctxParam(ctx), after, limit],
  );
  return rows.map(toEvent);
}
