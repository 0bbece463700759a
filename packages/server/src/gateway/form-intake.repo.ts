import type { Submission } from "@trellis/contracts";
import type { Queryable } from "../db/db";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import { ctxParam, type GatewayCtx } from "./gateway-ctx";

interface Row {
  id: string;
  app_id: string;
  form_id: string;
  submitter_id: string;
  payload: Record<string, unknown>;
  labels: string[];
  reviewer_id: string | null;
  created_ms: number;
}

// created_at comes back as epoch milliseconds (stored values have millisecond precision): the
// driver's regex-based timestamp parser was ~36 µs of a 50-row page in the CPU profile.
const COLUMNS =
  "id, app_id, form_id, submitter_id, payload, labels, reviewer_id, (extract(epoch FROM created_at) * 1000)::float8 AS created_ms";

const toSubmission = (r: Row): Submission => ({
  id: r.id,
  app_id: r.app_id,
  form_id: r.form_id,
  submitter_id: r.submitter_id,
  payload: r.payload,
  labels: setToLabels(r.labels),
  assigned_reviewer: r.reviewer_id,
  created_at: isoFromMs(r.created_ms),
});

/** A stored row as the policy engine sees it. */
export interface SubmissionRecord {
  submission: Submission;
  owner: string;
  labelSet: string[];
  reviewer: string | null;
}

const toRecord = (r: Row): SubmissionRecord => ({
  submission: toSubmission(r),
  owner: r.submitter_id,
  labelSet: r.labels,
  reviewer: r.reviewer_id,
});

// Each call below is one statement, so one round trip: claims and the query under RLS; writes
// also insert their audit event in it, so change and event commit (or roll back) together.

export async function createSubmission(
  q: Queryable,
  ctx: GatewayCtx,
  s: Omit<Submission, "created_at" | "app_id" | "submitter_id" | "labels">,
  labels: Record<string, string>,
): Promise<Submission> {
  await q.query(
    "SELECT trellis.gw_form_intake_create($1::trellis.gw_ctx, $2::uuid, $3, $4::jsonb, $5)",
    [ctxParam(ctx), s.id, s.form_id, JSON.stringify(s.payload), s.assigned_reviewer],
  );
  return { ...s, app_id: ctx.app_id, submitter_id: ctx.sub, labels, created_at: ctx.at };
}

export async function listSubmissions(
  q: Queryable,
  ctx: GatewayCtx,
  f: { formId?: string; beforeId?: string; limit: number },
): Promise<SubmissionRecord[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_form_intake_list($1::trellis.gw_ctx, $2, $3::uuid, $4)`,
    [ctxParam(ctx), f.formId ?? null, f.beforeId ?? null, f.limit],
  );
  return rows.map(toRecord);
}

export async function getSubmission(
  q: Queryable,
  ctx: GatewayCtx,
  id: string,
): Promise<SubmissionRecord | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM trellis.gw_form_intake_get($1::trellis.gw_ctx, $2::uuid)`,
    [ctxParam(ctx), id],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function deleteSubmission(
  q: Queryable,
  ctx: GatewayCtx,
  id: string,
): Promise<boolean> {
  const { rows } = await q.query<{ deleted: boolean }>(
    "SELECT trellis.gw_form_intake_delete($1::trellis.gw_ctx, $2::uuid) AS deleted",
    [ctxParam(ctx), id],
  );
  return rows[0]?.deleted === true;
}
