import { TrellisApiError } from "@trellis/sdk";

/** A problem with the command line itself: exit code 2 and the usage text. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A policy test suite ran and some cases failed: exit code 1, the report is already printed. */
export class PolicyTestsFailed extends Error {
  override readonly name = "PolicyTestsFailed";
  constructor(readonly failed: number) {
    super(`${failed} policy test${failed === 1 ? "" : "s"} failed`);
  }
}

/** The command line asked for help (`-h`, `--help`): the usage text and exit code 0. */
export class HelpRequested extends Error {
  override readonly name = "HelpRequested";
}

// Control characters (C0, DEL, C1) and bidi overrides could rewrite a terminal or reorder what
// it shows; values from callers (subjects, field names in issues) must not reach it raw.
const unsafe = (c: number) =>
  c < 0x20 ||
  (c >= 0x7f && c <= 0x9f) ||
  (c >= 0x202a && c <= 0x202e) ||
  (c >= 0x2066 && c <= 0x2069);

/**
 * Replaces terminal-unsafe characters with U+FFFD for plain-text output.
 * @example clean("ana\u001b[2J") // "ana\uFFFD[2J"
 */
export const clean = (text: string): string =>
  Array.from(text, (ch) => (unsafe(ch.codePointAt(0) ?? 0) ? "\uFFFD" : ch)).join("");

/**
 * Pretty JSON for stdout; the few characters JSON.stringify leaves raw that a terminal would
 * act on (DEL, C1, bidi overrides) are written as `\uXXXX` escapes, still valid JSON.
 * @example printJson({ id: "app_01…" })
 */
export function printJson(value: unknown): void {
  const text = Array.from(JSON.stringify(value, null, 2), (ch) => {
    const c = ch.codePointAt(0) ?? 0;
    return c >= 0x20 && unsafe(c) ? `\\u${c.toString(16).padStart(4, "0")}` : ch;
  }).join("");
  process.stdout.write(`${text}\n`);
}

/**
 * Columns padded to their widest cell, two spaces apart; cells are cleaned.
 * @example table(["ID", "TITLE"], [["form-intake", "Form intake"]])
 */
export function table(headers: string[], rows: string[][]): string {
  const cells = [headers, ...rows].map((row) => row.map(clean));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
    .concat("\n");
}

/**
 * Writes a failed command to stderr: `trellis: <code>: <message> (request <id>)` and one line
 * per issue for an API error; `trellis: cannot reach <url>: <cause>` when fetch failed; else
 * `trellis: <message>`.
 * @example printError(new TrellisApiError({ status: 403, code: "scope_missing", message: "…", requestId: "req_…" }))
 */
export function printError(err: unknown, url?: string): void {
  if (err instanceof TrellisApiError) {
    const request = err.requestId ? ` (request ${err.requestId})` : ` (HTTP ${err.status})`;
    const lines = [`trellis: ${err.code}: ${clean(err.message)}${request}`];
    for (const issue of err.issues ?? [])
      lines.push(`  ${clean(issue.path || "/")}: ${clean(issue.message)}`);
    if (err.allowed)
      lines.push(`  allowed: ${err.allowed.length ? err.allowed.map(clean).join(", ") : "none"}`);
    process.stderr.write(`${lines.join("\n")}\n`);
    return;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const cause = e.cause as { code?: unknown; message?: unknown } | undefined;
  let detail: string | undefined;
  if (typeof cause?.code === "string") detail = cause.code;
  else if (typeof cause?.message === "string" && cause.message) detail = cause.message;
  const text =
    e instanceof TypeError && e.message === "fetch failed" && url
      ? `cannot reach ${url}: ${detail ?? "network error"}`
      : `${e.message}${detail ? `: ${detail}` : ""}`;
  process.stderr.write(`trellis: ${clean(text)}\n`);
}
