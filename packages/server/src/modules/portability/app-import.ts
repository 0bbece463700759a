import { createHash } from "node:crypto";
import type { ImportResult } from "@trellis/contracts";
import { type Db, type Queryable, sqlState } from "../../db/db";
import { TrellisError } from "../../lib/errors";
import { insertApp } from "../apps/apps.repo";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { Catalog } from "../catalog/catalog";
import { ExportEnd, ExportHeader, qualified } from "./app-export";
import { templateDdl } from "./template-export";

/** Longest line an import accepts (one row; rows are bounded far below this by their tables). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;
const BATCH = 500;

/** Splits a byte stream into lines (without the newline), refusing one longer than the limit. */
async function* lines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNo = 0;
  for await (const chunk of input) {
    let buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    for (;;) {
      const nl = buf.indexOf(10);
      if (nl < 0) {
        pending.push(buf);
        pendingBytes += buf.length;
        if (pendingBytes > MAX_LINE_BYTES) throw invalid(lineNo + 1, "is longer than 4 MB");
        break;
      }
      const line = Buffer.concat([...pending, buf.subarray(0, nl)]);
      pending = [];
      pendingBytes = 0;
      lineNo += 1;
      if (line.length > MAX_LINE_BYTES) throw invalid(lineNo, "is longer than 4 MB");
      yield line;
      buf = buf.subarray(nl + 1);
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending); // a last line without its newline
}

const invalid = (line: number, message: string) =>
  new TrellisError("import_invalid", [{ path: `/line/${line}`, message }]);

function parseLine(bytes: Buffer, lineNo: number): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(bytes.toString("utf8"));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw invalid(lineNo, "is not a JSON object");
}

/**
 * Recreates an exported app here, all or nothing, in one transaction: the header's template
 * must be this instance's (same id, version and migration checksums), the app id must be free,
 * every row must belong to the app and to one of the template's tables, and the content must
 * match the end line's SHA-256 and row counts. Rows go in through `jsonb_populate_recordset`,
 * so each table's own types, CHECKs, triggers and constraints judge them.
 */
export async function importApp(
  deps: { db: Db; catalog: Catalog; audit: Pick<AuditService, "record"> },
  ctx: AuditContext,
  body: AsyncIterable<Buffer | string>,
): Promise<ImportResult> {
  const { db, catalog, audit } = deps;
  const it = lines(body)[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw invalid(1, "is missing: the body is empty");
  const parsedHeader = ExportHeader.safeParse(parseLine(first.value, 1));
  if (!parsedHeader.success) {
    throw new TrellisError(
      "import_invalid",
      parsedHeader.error.issues.slice(0, 20).map((i) => ({
        path: `/line/1/${i.path.join("/")}`,
        message: i.message,
      })),
    );
  }
  const header = parsedHeader.data;
  const app = header.app;
  const template = catalog.get(header.template.id);
  if (!template || app.template !== header.template.id)
    throw new TrellisError("import_template_mismatch");
  const local = templateDdl(template).map((m) => `${m.name}:${m.sha256}`);
  const theirs = header.template.ddl.map((m) => `${m.name}:${m.sha256}`);
  if (
    template.summary.version !== header.template.version ||
    app.template_version !== template.summary.version ||
    local.join(",") !== theirs.join(",")
  )
    throw new TrellisError("import_template_mismatch");
  const tables = new Set(template.manifest.tables);

  const all = createHash("sha256");
  const data = createHash("sha256");
  all.update(first.value).update("\n");
  const counts: Record<string, number> = Object.fromEntries([...tables].map((t) => [t, 0]));

  return db.transaction(async (tx) => {
    // The owner writes this app's rows only (core migration 0007).
    await tx.query("SELECT set_config('trellis.control_app', $1, true)", [app.id]);
    const exists = await tx.query("SELECT 1 FROM trellis.apps WHERE id = $1", [app.id]);
    if (exists.rows.length > 0) throw new TrellisError("app_exists");
    const { custom_policies: customs, ...settings } = app;
    await insertApp(tx, settings, ctx.actorId ?? "unknown");
    for (const c of customs) {
      await tx.query(
        `INSERT INTO trellis.custom_policies (app_id, id, effect, cedar, status, created_at, created_by)
         VALUES ($1, $2, $3, $4, 'active', now(), $5)`,
        [app.id, c.id, c.effect, c.cedar, ctx.actorId ?? "unknown"],
      );
    }
    let batch: { table: string; rows: unknown[] } | undefined;
    const flush = async () => {
      if (!batch || batch.rows.length === 0) return;
      try {
        await insertRows(tx, batch.table, app.id, batch.rows);
      } catch (err) {
        // A row the table refuses (a wrong type, a failed CHECK, a duplicate key): the
        // import's fault, not ours; the transaction rolls back whole.
        const state = sqlState(err);
        if (state && /^(22|23)/.test(state))
          throw invalid(
            lineNo,
            `a row before this line is refused by ${batch.table} (SQLSTATE ${state})`,
          );
        throw err;
      }
      batch = undefined;
    };
    let lineNo = 1;
    let end: ReturnType<typeof ExportEnd.parse> | undefined;
    for (;;) {
      const next = await it.next();
      if (next.done) break;
      lineNo += 1;
      if (end) throw invalid(lineNo, "comes after the end line");
      const obj = parseLine(next.value, lineNo);
      if (obj.type === "end") {
        const e = ExportEnd.safeParse(obj);
        if (!e.success) throw invalid(lineNo, "is not a valid end line");
        end = e.data;
        continue;
      }
      all.update(next.value).update("\n");
      data.update(next.value).update("\n");
      const table = obj.type === "row" && typeof obj.table === "string" ? obj.table : "";
      const row = obj.row as Record<string, unknown> | undefined;
      if (!tables.has(table) || !row || typeof row !== "object" || Array.isArray(row))
        throw invalid(lineNo, "is not a row of one of the template's tables");
      if (row.app_id !== app.id) throw invalid(lineNo, "belongs to another app");
      if (batch && batch.table !== table) await flush();
      batch ??= { table, rows: [] };
      batch.rows.push(row);
      counts[table] = (counts[table] ?? 0) + 1;
      if (batch.rows.length >= BATCH) await flush();
    }
    await flush();
    if (!end) throw new TrellisError("import_hash_mismatch"); // cut short: no end line
    const sha256 = all.digest("hex");
    const dataSha = data.digest("hex");
    const countsMatch = [...tables].every((t) => (end?.rows[t] ?? 0) === counts[t]);
    if (end.sha256 !== sha256 || end.data_sha256 !== dataSha || !countsMatch)
      throw new TrellisError("import_hash_mismatch");
    await audit.record(
      { ...ctx, appId: app.id },
      {
        action: "app.import",
        resourceType: "app",
        resourceId: app.id,
        diff: { rows: counts, sha256, data_sha256: dataSha, exported_at: header.exported_at },
      },
      tx,
    );
    return {
      app_id: app.id,
      template: template.summary.id,
      template_version: template.summary.version,
      rows: counts,
      sha256,
      data_sha256: dataSha,
    };
  });
}

/** One batch of exported rows into their table, typed by the table itself. */
async function insertRows(tx: Queryable, table: string, appId: string, rows: unknown[]) {
  const res = await tx.query(
    `INSERT INTO ${qualified(table)}
       SELECT * FROM jsonb_populate_recordset(NULL::${qualified(table)}, $1::jsonb) r
        WHERE r.app_id = $2`,
    [JSON.stringify(rows), appId],
  );
  if (res.rowCount !== rows.length) throw new TrellisError("import_invalid");
}
