/**
 * The governed request's context, passed to the gateway SQL functions as one value of the
 * composite type `trellis.gw_ctx` (core migration 0014): claims for row-level security plus the
 * audit event's fields.
 */
export interface GatewayCtx {
  app_id: string;
  sub: string;
  scopes: string;
  /** Row labels, "key=value" separated by spaces. */
  labels: string;
  env: string;
  app_env: string;
  /** The app's policy blocks, separated by spaces (row-level security reads them). */
  blocks: string;
  /** The decision's policy ids, separated by spaces (written into the audit event). */
  policy_ids: string;
  token_id: string;
  event_id: string;
  request_id: string;
  at: string;
  /** What the event records as changed (audit `diff`); `personal` is the actor's own data. */
  diff?: Record<string, unknown>;
}

/** The fields of `trellis.gw_ctx`, in the type's order. */
const FIELDS = [
  "app_id",
  "sub",
  "scopes",
  "labels",
  "env",
  "app_env",
  "blocks",
  "policy_ids",
  "token_id",
  "event_id",
  "request_id",
  "at",
] as const;

/**
 * One field of a composite literal: always double-quoted, with `"` and `\` escaped by a
 * backslash (PostgreSQL's record input rules), so a comma, parenthesis, quote or space in a
 * value can never end the field or shift the next claim into it; null is the empty field.
 */
const field = (v: string | null | undefined): string =>
  v === null || v === undefined ? "" : `"${v.replace(/["\\]/g, "\\$&")}"`;

/**
 * The context as the text of a `trellis.gw_ctx` value, for a `$n::trellis.gw_ctx` parameter.
 * test/gateway-ctx.test.ts round-trips generated contexts (quotes, backslashes, commas,
 * parentheses, spaces, non-BMP text) through both datastores.
 */
export function ctxParam(ctx: GatewayCtx): string {
  let out = "(";
  for (const k of FIELDS) out += `${field(ctx[k])},`;
  return `${out}${field(ctx.diff === undefined ? null : JSON.stringify(ctx.diff))})`;
}
