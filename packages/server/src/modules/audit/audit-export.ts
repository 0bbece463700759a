import type { Readable } from "node:stream";
import type { AuditEvent } from "@trellis/contracts";
import type { Db } from "../../db/db";
import { lineStream } from "../../lib/line-stream";
import { EVENT_LIST_COLUMNS, type EventFilter, filterSql, toEvent } from "./audit.repo";

const CSV_COLUMNS = [
  "seq",
  "event_id",
  "timestamp",
  "actor_id",
  "actor_role",
  "action",
  "resource_type",
  "resource_id",
  "app_id",
  "token_id",
  "policy_ids",
  "outcome",
  "error_code",
  "request_id",
  "diff",
] as const;

/**
 * One CSV cell (RFC 4180). A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR at
 * its start) is prefixed with ' so opening an export never executes an attacker's text.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  let text =
    typeof value === "string"
      ? value
      : Array.isArray(value) && value.every((v) => typeof v === "string")
        ? value.join(" ")
        : typeof value === "object"
          ? JSON.stringify(value)
          : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const csvRow = (e: AuditEvent) => CSV_COLUMNS.map((c) => csvCell(e[c])).join(",");

/**
 * Every event matching the filter, oldest first, as NDJSON (one AuditEvent per line) or CSV
 * (a header, then one row each), from one consistent snapshot through a cursor, written as the
 * client reads. `done` settles with the count when the last line is out.
 */
export function exportEvents(
  db: Db,
  filter: EventFilter,
  format: "ndjson" | "csv",
): { stream: Readable; done: Promise<number> } {
  const { stream, write } = lineStream();
  const done = db.transaction(async (tx) => {
    await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    const { where, params } = filterSql(filter);
    await tx.query(
      `DECLARE trellis_audit_export NO SCROLL CURSOR FOR
         SELECT ${EVENT_LIST_COLUMNS} FROM trellis.audit_events WHERE ${where} ORDER BY seq`,
      params,
    );
    if (format === "csv") await write(CSV_COLUMNS.join(","));
    let n = 0;
    for (;;) {
      const { rows } = await tx.query<Parameters<typeof toEvent>[0]>(
        "FETCH 1000 FROM trellis_audit_export",
      );
      for (const r of rows) {
        const e = toEvent(r);
        await write(format === "csv" ? csvRow(e) : JSON.stringify(e));
      }
      n += rows.length;
      if (rows.length < 1000) break;
    }
    await tx.query("CLOSE trellis_audit_export");
    stream.end();
    return n;
  });
  done.catch((err) => stream.destroy(err instanceof Error ? err : new Error(String(err))));
  return { stream, done };
}
