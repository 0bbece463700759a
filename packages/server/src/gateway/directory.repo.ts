import type { Item } from "@trellis/contracts";
import type { Queryable } from "../db/db";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import { ctxParam, type GatewayCtx } from "./gateway-ctx";
import type { RecordFacts } from "./governed";

interface Row {
  id: string;
  app_id: string;
  kind: string;
  owner_id: string;
  attrs: Record<string, unknown>;
  labels: string[];
  created_ms: number;
  updated_ms: number;
}

const COLUMNS = `id, app_id, kind, owner_id, attrs, labels,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
  (extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms`;

/** A stored item, with what Cedar decides on. */
export interface ItemRecord {
  item: Item;
  facts: RecordFacts;
}

const toRecord = (r: Row): ItemRecord => ({
  item: {
    id: r.id,
    app_id: r.app_id,
    kind: r.kind,
    owner_id: r.owner_id,
    attrs: r.attrs,
    labels: setToLabels(r.labels),
    created_at: isoFromMs(r.created_ms),
    updated_at: isoFromMs(r.updated_ms),
  },
  facts: { id: r.id, owner: r.owner_id, labels: r.labels, reviewer: null },
});

export async function createItem(
  q: Queryable,
  ctx: GatewayCtx,
  i: { id: string; kind: string; attrs: Record<string, unknown> },
): Promise<void> {
  await q.query("SELECT trellis.gw_directory_create($1::trellis.gw_ctx, $2::uuid, $3, $4::jsonb)", [
    ctxParam(ctx),
    i.id,
    i.kind,
    JSON.stringify(i.attrs),
  ]);
}

export async function listItems(
  q: Queryable,
  ctx: GatewayCtx,
  f: { kind?: string; attrs?: Record<string, unknown>; beforeId?: string; limit: number },
): Promise<ItemRecord[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_directory_list($1::trellis.gw_ctx, $2, $3::jsonb, $4::uuid, $5)`,
    [
      ctxParam(ctx),
      f.kind ?? null,
      f.attrs ? JSON.stringify(f.attrs) : null,
      f.beforeId ?? null,
      f.limit,
    ],
  );
  return rows.map(toRecord);
}

export async function getItem(q: Queryable, ctx: GatewayCtx, id: string) {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_directory_get($1::trellis.gw_ctx, $2::uuid)`,
    [ctxParam(ctx), id],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function updateItem(
  q: Queryable,
  ctx: GatewayCtx,
  id: string,
  attrs: Record<string, unknown>,
) {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_directory_update($1::trellis.gw_ctx, $2::uuid, $3::jsonb)`,
    [ctxParam(ctx), id, JSON.stringify(attrs)],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function deleteItem(q: Queryable, ctx: GatewayCtx, id: string): Promise<boolean> {
  const { rows } = await q.query<{ deleted: boolean }>(
    "SELECT trellis.gw_directory_delete($1::trellis.gw_ctx, $2::uuid) AS deleted",
    [ctxParam(ctx), id],
  );
  return rows[0]?.deleted === true;
}
