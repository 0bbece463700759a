import type { AppPolicy } from "./app-policy";
import type { Principal } from "./engine";

/** Where a template keeps the record attributes blocks speak of. */
export interface RecordColumns {
  table: string;
  /** The column naming a record (default `id`). */
  id?: string;
  owner: string;
  labels: string;
  reviewer: string | null;
}

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
const arr = (xs: readonly string[]) => `ARRAY[${xs.map(lit).join(", ")}]::text[]`;
const or = (xs: string[]) =>
  xs.includes("true") ? "true" : xs.length === 0 ? "false" : xs.join(" OR ");

/**
 * The row filter row-level security applies for this principal and action, spelled out with
 * the principal's claims in place: what `explain` shows. Tests run it against the database and
 * compare with what RLS actually lets through.
 */
export function rowFilterSql(
  policy: AppPolicy,
  appId: string,
  appEnvironment: string,
  p: Principal,
  action: string,
  cols: RecordColumns,
): string {
  const has = (b: string) => policy.blocks.includes(b as AppPolicy["blocks"][number]);
  const scope = (s: string) => p.scopes.includes(s);
  const parts: string[] = [`app_id = ${lit(appId)}`];

  const labelPart = () =>
    p.labels.length > 0 ? `${cols.labels} @> ${arr(p.labels)}` : "false /* label-scoped */";

  const readFilter = () => {
    const permits: string[] = [];
    if (has("owner-read") && scope("read")) permits.push(`${cols.owner} = ${lit(p.sub)}`);
    if (has("app-read") && scope("read:all")) permits.push("true");
    if (has("admin-read") && scope("admin:read")) permits.push("true");
    if (has("assigned-reviewer") && scope("read") && cols.reviewer)
      permits.push(`${cols.reviewer} = ${lit(p.sub)}`);
    const out = [`(${or(permits)})`];
    if (has("label-scoped")) out.push(`(${labelPart()})`);
    return out;
  };

  const isRead = policy.actions.read.includes(action);
  if (isRead) {
    parts.push(...readFilter());
  } else {
    const allowed = has("owner-write") && scope(action);
    parts.push(allowed ? `${cols.owner} = ${lit(p.sub)}` : "false /* no write permit */");
    if (has("read-only")) parts.push("false /* read-only */");
    if (has("prod-writes-only") && appEnvironment === "prod" && p.environment !== "prod")
      parts.push("false /* prod-writes-only */");
    if (has("label-scoped")) parts.push(`(${labelPart()})`);
    // An existing record must also be readable (PostgreSQL applies the read policy to updates).
    if (!policy.actions.creates.includes(action)) parts.push(...readFilter());
  }
  return parts.join("\n  AND ");
}
