import { join } from "node:path";
import type { Queryable } from "../../db/db";
import { CORE_MIGRATIONS, migrate } from "../../db/migrate";
import { openPglite } from "../../db/pglite";
import { checkManifest, type Manifest, type TemplateProblem } from "./catalog";

// A text column is bounded when a CHECK on it limits its length, or matches it against an
// anchored pattern without unbounded repetition (`^[a-z]{1,64}$`), or a foreign key ties it
// to existing keys.
const LENGTH = (col: string) =>
  new RegExp(`\\b(char_length|character_length|length|octet_length)\\(\\s*\\(?${col}\\b`);
const ANCHORED = (col: string) => new RegExp(`\\b${col}\\s*~\\s*'\\^[^'*+]*\\$'`);

/**
 * The SQL safety rules for the tables a template declares, checked in the catalog of a
 * database its migrations ran on: each exists, has a NOT NULL `app_id`, ENABLE and FORCE ROW
 * LEVEL SECURITY, the control plane's policies (trellis.allow_control_plane), and no text column
 * without a length bound.
 */
export async function checkTables(
  q: Queryable,
  m: Manifest,
  file: string,
): Promise<TemplateProblem[]> {
  const problems: TemplateProblem[] = [];
  for (const qualified of m.tables) {
    const [schema, name] = qualified.split(".") as [string, string];
    const at = (message: string) => problems.push({ file, path: qualified, message });
    const { rows } = await q.query<{
      oid: number;
      rls: boolean;
      force: boolean;
      app_id: boolean | null;
    }>(
      `SELECT c.oid::int AS oid, c.relrowsecurity AS rls, c.relforcerowsecurity AS force,
              (SELECT a.attnotnull FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'app_id' AND NOT a.attisdropped) AS app_id
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [schema, name],
    );
    const t = rows[0];
    if (!t) {
      at("the migrations do not create this table");
      continue;
    }
    if (t.app_id === null) at("has no app_id column (every data table is keyed by app)");
    else if (!t.app_id) at("app_id may be NULL");
    if (qualified === m.records.table) {
      const named = [m.records.id ?? "id", m.records.owner, m.records.labels, m.records.reviewer];
      const { rows: present } = await q.query<{ name: string }>(
        "SELECT attname AS name FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        [t.oid],
      );
      const have = new Set(present.map((r) => r.name));
      for (const col of named) {
        if (col && !have.has(col)) at(`records names column ${col}, which the table lacks`);
      }
    }
    const { rows: cp } = await q.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_policy
        WHERE polrelid = $1 AND polname IN ('control_plane_read', 'control_plane_insert', 'control_plane_update')`,
      [t.oid],
    );
    if ((cp[0]?.n ?? 0) < 3)
      at(
        `lacks the control plane's policies (SELECT trellis.allow_control_plane('${qualified}')): export, import and upgrades would not see its rows`,
      );
    if (!t.rls) at("row-level security is not enabled (ALTER TABLE … ENABLE ROW LEVEL SECURITY)");
    if (!t.force) at("row-level security is not forced (ALTER TABLE … FORCE ROW LEVEL SECURITY)");
    const cols = await q.query<{ name: string; checks: string[] | null }>(
      `SELECT a.attname AS name,
              (SELECT array_agg(pg_get_constraintdef(k.oid)) FROM pg_constraint k
                WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND a.attnum = ANY (k.conkey)) AS checks
         FROM pg_attribute a
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.atttypid = 'text'::regtype
               OR (a.atttypid = 'varchar'::regtype AND a.atttypmod < 0))
          -- a foreign key bounds a column to values that exist elsewhere (app_id → apps.id)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = a.attrelid
                            AND f.contype = 'f' AND a.attnum = ANY (f.conkey))`,
      [t.oid],
    );
    for (const c of cols.rows) {
      const checks = c.checks ?? [];
      if (!checks.some((d) => LENGTH(c.name).test(d) || ANCHORED(c.name).test(d)))
        at(`column ${c.name} is unbounded text (add a CHECK on its length)`);
    }
  }
  return problems;
}

/** Tables a set of migrations created in the trellis schema that the manifest does not declare. */
async function undeclared(q: Queryable, before: Set<string>, m: Manifest, file: string) {
  const { rows } = await q.query<{ t: string }>(
    `SELECT n.nspname || '.' || c.relname AS t FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'trellis' AND c.relkind IN ('r', 'p')`,
  );
  return rows
    .map((r) => r.t)
    .filter((t) => !before.has(t) && !m.tables.includes(t) && t !== "trellis.schema_migrations")
    .map((t) => ({ file, path: t, message: "created by the migrations but not listed in tables" }));
}

/**
 * `trellis template check DIR`: the manifest, then its migrations applied after the core ones
 * to a scratch in-memory database, then the SQL rules. Returns every problem found.
 */
export async function checkTemplateDir(dir: string): Promise<TemplateProblem[]> {
  const checked = checkManifest(dir);
  if (!checked.manifest) return checked.problems;
  const m = checked.manifest;
  const file = join(dir, "migrations");
  const db = await openPglite();
  try {
    await migrate(db, [{ scope: "core", dir: CORE_MIGRATIONS }]);
    const { rows } = await db.query<{ t: string }>(
      `SELECT n.nspname || '.' || c.relname AS t FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'trellis'`,
    );
    const before = new Set(rows.map((r) => r.t));
    try {
      await migrate(db, [{ scope: `template:${m.id}`, dir: file }]);
    } catch (err) {
      return [{ file, path: "/", message: `a migration fails: ${(err as Error).message}` }];
    }
    return [...(await checkTables(db, m, file)), ...(await undeclared(db, before, m, file))];
  } finally {
    await db.close();
  }
}
