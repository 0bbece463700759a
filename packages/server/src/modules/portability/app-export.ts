import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { App, TemplateExport } from "@trellis/contracts";
import { z } from "zod";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { lineStream } from "../../lib/line-stream";
import { findApp } from "../apps/apps.repo";
import type { Catalog } from "../catalog/catalog";
import { customPolicies } from "../policy/policy.repo";
import { exportTemplate } from "./template-export";

/**
 * The app export, NDJSON, one JSON object per line:
 *   {"type":"header", format, exported_at, app (settings + active custom policies), template}
 *   {"type":"row", table, row}   … every row of the app in every table of its template
 *   {"type":"end", rows: {table: n}, sha256, data_sha256}
 * `sha256` covers every byte before the end line; `data_sha256` only the row lines, so two
 * instances holding the same data (PGlite and PostgreSQL alike) give the same value.
 */
export const EXPORT_FORMAT = "trellis.app-export/1";

export const ExportedApp = App.extend({
  custom_policies: z.array(
    z.object({ id: z.string(), effect: z.enum(["permit", "forbid"]), cedar: z.string() }),
  ),
});
export type ExportedApp = z.infer<typeof ExportedApp>;

export const ExportHeader = z.object({
  type: z.literal("header"),
  format: z.literal(EXPORT_FORMAT),
  exported_at: z.string(),
  app: ExportedApp,
  template: TemplateExport,
});

export const ExportEnd = z.strictObject({
  type: z.literal("end"),
  rows: z.record(z.string(), z.number().int().min(0)),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  data_sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const PAGE = 500;

/** The primary-key columns of a table, in key order (rows are exported in that order). */
export async function primaryKey(q: Queryable, table: string): Promise<string[]> {
  const { rows } = await q.query<{ col: string }>(
    `SELECT a.attname AS col
       FROM pg_index i
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1::regclass AND i.indisprimary
      ORDER BY k.ord`,
    [table],
  );
  return rows.map((r) => r.col);
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
/** `trellis.some_table` (checked by the manifest schema) as a quoted identifier. */
export const qualified = (table: string) => table.split(".").map(ident).join(".");

export interface ExportSummary {
  rows: Record<string, number>;
  sha256: string;
  data_sha256: string;
}

/**
 * Starts an app's export and returns it as a stream: a consistent snapshot (one REPEATABLE
 * READ transaction, timestamps in UTC), read through a cursor 500 rows at a time and written
 * as the client takes it. `done` settles when the stream ends (with the hashes) or fails.
 * Throws app_not_found before anything is streamed.
 */
export async function exportApp(
  deps: { db: Db; catalog: Catalog; clock: Clock },
  appId: string,
): Promise<{ stream: Readable; done: Promise<ExportSummary> }> {
  const { db, catalog, clock } = deps;
  const found = await findApp(db, appId);
  const template = found && catalog.get(found.app.template);
  if (!found || !template) throw new TrellisError("app_not_found");
  const all = createHash("sha256");
  const data = createHash("sha256");
  let isData = false;
  const { stream: out, write: writeLine } = lineStream((bytes) => {
    all.update(bytes);
    if (isData) data.update(bytes);
  });
  const write = (line: string, rowLine: boolean) => {
    isData = rowLine;
    return writeLine(line);
  };
  const done = db.transaction(async (tx) => {
    await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await tx.query("SET LOCAL TimeZone = 'UTC'");
    // The owner reads this app's rows only (core migration 0007).
    await tx.query("SELECT set_config('trellis.control_app', $1, true)", [appId]);
    const again = await findApp(tx, appId);
    if (!again) throw new TrellisError("app_not_found");
    const customs = (await customPolicies(tx, appId))
      .filter((c) => c.status === "active")
      .map((c) => ({ id: c.id, effect: c.effect, cedar: c.cedar }));
    const header = {
      type: "header",
      format: EXPORT_FORMAT,
      exported_at: clock.now().toISOString(),
      app: { ...again.app, custom_policies: customs },
      template: exportTemplate(template),
    };
    await write(JSON.stringify(header), false);
    const counts: Record<string, number> = {};
    for (const table of template.manifest.tables) {
      const key = (await primaryKey(tx, table)).map(ident).join(", ");
      const prefix = `{"type":"row","table":${JSON.stringify(table)},"row":`;
      counts[table] = 0;
      await tx.query(
        `DECLARE trellis_export NO SCROLL CURSOR FOR
           SELECT to_jsonb(t)::text AS j FROM ${qualified(table)} t WHERE t.app_id = $1
           ORDER BY ${key || "t.app_id"}`,
        [appId],
      );
      for (;;) {
        const { rows } = await tx.query<{ j: string }>(`FETCH ${PAGE} FROM trellis_export`);
        for (const r of rows) await write(`${prefix}${r.j}}`, true);
        counts[table] += rows.length;
        if (rows.length < PAGE) break;
      }
      await tx.query("CLOSE trellis_export");
    }
    const summary: ExportSummary = {
      rows: counts,
      sha256: all.digest("hex"),
      data_sha256: data.digest("hex"),
    };
    const end = JSON.stringify({ type: "end", ...summary });
    out.end(`${end}\n`);
    return summary;
  });
  done.catch((err) => out.destroy(err instanceof Error ? err : new Error(String(err))));
  return { stream: out, done };
}
