import type { Booking } from "@trellis/contracts";
import { type Queryable, sqlState } from "../db/db";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import { ctxParam, type GatewayCtx } from "./gateway-ctx";
import type { RecordFacts } from "./governed";

interface Row {
  id: string;
  app_id: string;
  resource: string;
  owner_id: string;
  labels: string[];
  starts_ms: number;
  ends_ms: number;
  created_ms: number;
}

const COLUMNS = `id, app_id, resource, owner_id, labels,
  (extract(epoch FROM lower(period)) * 1000)::float8 AS starts_ms,
  (extract(epoch FROM upper(period)) * 1000)::float8 AS ends_ms,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms`;

/** A stored booking, with what Cedar decides on. */
export interface BookingRecord {
  booking: Booking;
  facts: RecordFacts;
}

const toRecord = (r: Row): BookingRecord => ({
  booking: {
    id: r.id,
    app_id: r.app_id,
    resource: r.resource,
    owner_id: r.owner_id,
    starts_at: isoFromMs(r.starts_ms),
    ends_at: isoFromMs(r.ends_ms),
    labels: setToLabels(r.labels),
    created_at: isoFromMs(r.created_ms),
  },
  facts: { id: r.id, owner: r.owner_id, labels: r.labels, reviewer: null },
});

/**
 * Books `[starts, ends)`; `"conflict"` when a live booking of the same resource overlaps it
 * (the exclusion constraint's 23P01: an expected outcome, so a value, not an exception).
 * On a conflict the statement rolled back, its audit event with it: the caller audits the denial.
 */
export async function createBooking(
  q: Queryable,
  ctx: GatewayCtx,
  b: { id: string; resource: string; starts: string; ends: string },
): Promise<"created" | "conflict"> {
  try {
    await q.query(
      "SELECT trellis.gw_bookings_create($1::trellis.gw_ctx, $2::uuid, $3, $4::timestamptz, $5::timestamptz)",
      [ctxParam(ctx), b.id, b.resource, b.starts, b.ends],
    );
    return "created";
  } catch (err) {
    if (sqlState(err) === "23P01") return "conflict";
    throw err;
  }
}

export async function listBookings(
  q: Queryable,
  ctx: GatewayCtx,
  f: { resource?: string; from?: string; to?: string; beforeId?: string; limit: number },
): Promise<BookingRecord[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_bookings_list($1::trellis.gw_ctx, $2, $3::timestamptz, $4::timestamptz, $5::uuid, $6)`,
    [ctxParam(ctx), f.resource ?? null, f.from ?? null, f.to ?? null, f.beforeId ?? null, f.limit],
  );
  return rows.map(toRecord);
}

export async function getBooking(
  q: Queryable,
  ctx: GatewayCtx,
  id: string,
): Promise<BookingRecord | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_bookings_get($1::trellis.gw_ctx, $2::uuid)`,
    [ctxParam(ctx), id],
  );
  return rows[0] && toRecord(rows[0]);
}

/** Cancels a live booking; false when there is none this caller may cancel. */
export async function cancelBooking(q: Queryable, ctx: GatewayCtx, id: string): Promise<boolean> {
  const { rows } = await q.query<{ cancelled: boolean }>(
    "SELECT trellis.gw_bookings_cancel($1::trellis.gw_ctx, $2::uuid) AS cancelled",
    [ctxParam(ctx), id],
  );
  return rows[0]?.cancelled === true;
}
