import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Db } from "../../db/db";
import { lineStream } from "../../lib/line-stream";
import { canonicalEvent, EVENT_COLUMNS, type EventRow, publicForm, SUBJECT_KEY_JOIN } from "./log";
import {
  checkedPages,
  checkPrune,
  type LeafRecord,
  type VerifyProblem,
  type VerifyReport,
  verifyLeaves,
} from "./verify-log";

/**
 * The whole log as a file an auditor can verify offline (`trellis audit verify --file F --key K`):
 * NDJSON, a header `{type: "log", format, tree_size, pruned_below, checkpoints: [{tree_size,
 * note}]}`, then one line per leaf `{leaf_index, leaf_hash, event}` (the event exactly as hashed,
 * null when pruned). Nothing in it is trusted by the verifier but the key it is given, so the
 * file ends at the newest signed checkpoint: leaves integrated after it (at most one merge delay
 * old) are in the next export, and a file whose last leaves no signature covers fails to verify.
 */
export const LOG_EXPORT_FORMAT = "trellis.audit-log/1";

export function exportLog(db: Db): { stream: Readable; done: Promise<number> } {
  const { stream, write } = lineStream();
  const done = db.transaction(async (tx) => {
    await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await tx.query("SET LOCAL TimeZone = 'UTC'");
    const { rows: st } = await tx.query<{ tree_size: number; personal_from: number }>(
      "SELECT tree_size, personal_from FROM trellis.audit_log_state",
    );
    const integrated = Number(st[0]?.tree_size ?? 0);
    const personalFrom = Number(st[0]?.personal_from ?? 0);
    const { rows: cps } = await tx.query<{ tree_size: number; note: string }>(
      "SELECT tree_size, note FROM trellis.audit_checkpoints WHERE tree_size <= $1 ORDER BY tree_size",
      [integrated],
    );
    // Up to the newest signed checkpoint (0 before the first one is signed).
    const size = Number(cps.at(-1)?.tree_size ?? 0);
    // Only prunes the file holds count (the verifier checks their signatures).
    const { rows: pr } = await tx.query<{ below: number | null }>(
      `SELECT max((e.diff->>'below_leaf')::bigint) AS below FROM trellis.audit_events e
         JOIN trellis.audit_leaves l ON l.event_seq = e.seq
        WHERE e.action = 'audit.prune' AND e.outcome = 'allowed' AND l.leaf_index < $1`,
      [size],
    );
    await write(
      JSON.stringify({
        type: "log",
        format: LOG_EXPORT_FORMAT,
        tree_size: size,
        pruned_below: Number(pr[0]?.below ?? 0),
        checkpoints: cps.map((c) => ({ tree_size: Number(c.tree_size), note: c.note })),
      }),
    );
    await tx.query(
      `DECLARE trellis_log_export NO SCROLL CURSOR FOR
         SELECT l.leaf_index, l.hash AS leaf_hash, e.seq IS NOT NULL AS found, ${EVENT_COLUMNS}
           FROM trellis.audit_leaves l LEFT JOIN trellis.audit_events e ON e.seq = l.event_seq
                ${SUBJECT_KEY_JOIN}
          WHERE l.leaf_index < $1 ORDER BY l.leaf_index`,
      [size],
    );
    for (;;) {
      const { rows } = await tx.query<
        EventRow & { leaf_index: number; leaf_hash: Uint8Array; found: boolean }
      >("FETCH 2000 FROM trellis_log_export");
      for (const { leaf_index, leaf_hash, found, ...event } of rows) {
        const canonical = found
          ? publicForm(event as EventRow, Number(leaf_index) < personalFrom)
          : "null";
        await write(
          `{"leaf_index":${Number(leaf_index)},"leaf_hash":${JSON.stringify(Buffer.from(leaf_hash).toString("base64"))},"event":${canonical}}`,
        );
      }
      if (rows.length < 2000) break;
    }
    await tx.query("CLOSE trellis_log_export");
    stream.end();
    return size;
  });
  done.catch((err) => stream.destroy(err instanceof Error ? err : new Error(String(err))));
  return { stream, done };
}

/** `trellis audit verify --file F --key K`: the same checks as on the database, from a log export. */
export async function verifyLogFile(
  path: string,
  key: string,
  onProgress?: (done: number, total: number) => void,
): Promise<VerifyReport> {
  const lines = createInterface({
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  })[Symbol.asyncIterator]();
  const first = await lines.next();
  const header = first.done ? undefined : (JSON.parse(first.value) as Record<string, unknown>);
  if (header?.type !== "log" || header.format !== LOG_EXPORT_FORMAT)
    throw new Error(`${path} is not a Trellis audit log export (${LOG_EXPORT_FORMAT})`);
  const size = Number(header.tree_size);
  const claimedPrune = Number(header.pruned_below ?? 0);
  // NaN compares false with everything: a header "x" would let every leaf count as pruned.
  for (const [name, v] of [
    ["tree_size", size],
    ["pruned_below", claimedPrune],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 0)
      throw new Error(`${path}: the header's ${name} is not a whole number ≥ 0`);
  let provenPrune = 0; // the largest prune mark the file's own (verified) events carry
  let forgedPrune: VerifyProblem | undefined; // the first prune the key did not sign
  async function* leaves(): AsyncGenerator<LeafRecord[]> {
    let page: LeafRecord[] = [];
    for (;;) {
      const n = await lines.next();
      if (n.done) break;
      if (!n.value) continue;
      const l = JSON.parse(n.value) as {
        leaf_index: number;
        leaf_hash: string;
        event: Record<string, unknown> | null;
      };
      const e = l.event;
      if (e && e.action === "audit.prune" && e.outcome === "allowed" && l.leaf_index < size) {
        const c = checkPrune(e, l.leaf_index, key);
        if ("problem" in c) forgedPrune ??= c.problem;
        else provenPrune = Math.max(provenPrune, c.below);
      }
      page.push({
        leaf_index: l.leaf_index,
        leaf_hash: l.leaf_hash,
        // The file holds each event as its leaf hashed it; RFC 8785 of the parsed object gives
        // those bytes back (either form: see log.ts).
        canonical: e ? canonicalEvent(e) : null,
        event_id: e ? String(e.event_id) : undefined,
      });
      if (page.length === 1000) {
        yield page;
        page = [];
      }
    }
    if (page.length > 0) yield page;
  }
  const checkpoints = (
    (header.checkpoints ?? []) as Array<{ tree_size: number; note: string }>
  ).map((c) => ({ size: Number(c.tree_size), note: c.note }));
  const report = await verifyLeaves(checkedPages(leaves(), claimedPrune), {
    size,
    checkpoints,
    key,
    prunedBelow: claimedPrune,
    onProgress,
  });
  // A prune the key did not sign, unless the walk found a problem at or before it (its own
  // line changed, say: that is the better name for it).
  if (
    forgedPrune &&
    (report.ok || (report.problem?.leaf_index ?? 0) > (forgedPrune.leaf_index ?? 0))
  )
    return { ...report, ok: false, problem: forgedPrune };
  // Every leaf must be under a signature: the header's tree_size is the file's own claim, and
  // leaves past the newest checkpoint (or a file with its checkpoints removed) prove nothing.
  const signed = checkpoints.at(-1)?.size ?? 0; // when ok, all verified, in order of size
  if (report.ok && size > signed)
    return {
      ...report,
      ok: false,
      problem: {
        kind: "unsigned",
        leaf_index: signed,
        message:
          signed === 0
            ? `no signed checkpoint in the file covers its ${size} leaves: nothing proves them (an export ends at a signed checkpoint; were its checkpoints removed?)`
            : `leaves ${signed}..${size - 1} are not covered by any signed checkpoint in the file (the newest is at ${signed}): nothing proves them (an export ends at a signed checkpoint; was the file's last one removed?)`,
      },
    };
  if (report.ok && claimedPrune > provenPrune)
    return {
      ...report,
      ok: false,
      problem: {
        kind: "event_missing",
        message: `the file says events below leaf ${claimedPrune} were pruned, but the log records a prune only below ${provenPrune}`,
      },
    };
  return report;
}
