import { createHmac } from "node:crypto";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { EVENT_COLUMNS, type EventRow, publicForm, SUBJECT_KEY_JOIN } from "./log";

/**
 * Near-real-time copies of the audit log, in leaf order, off the request path:
 *  - a file: one NDJSON line per event `{"leaf_index","leaf_hash","event"}` (the event exactly as
 *    hashed: the public part and the personal commitment, never the personal part, so a copy
 *    outside the database does not outlive an erasure), fsynced per batch; it resumes after its
 *    own last complete line, so nothing is lost or doubled. A torn last line (no final "\n": the
 *    process died mid-write, the disk filled) was never acknowledged, so it is cut off and
 *    rewritten. A file that does not end with this log's own line (not an audit line, or a leaf
 *    this tree does not have, or has with another hash) is someone else's: it is refused and
 *    left untouched, with an error logged at every retry;
 *  - a webhook: batches POSTed with `x-trellis-signature: sha256=<HMAC(secret, timestamp "." body)>`
 *    and `x-trellis-timestamp`; a 2xx acknowledges the batch (position kept in the database, one
 *    server delivering at a time); anything else is retried with backoff (1 s doubling to 60 s)
 *    from the last acknowledged leaf. Receivers dedupe by leaf_index (at least once).
 * Each sink runs on its own and backs off on its own: one failing never holds up the other.
 */
const BATCH = 500;
/** How far back a read looks at a time, and the longest last line taken for an audit line. */
const WINDOW = 1 << 20;
const NL = 0x0a;
/** How every line this sink writes begins (JSON.stringify keeps Delivery's key order). */
const LINE_START = Buffer.from('{"leaf_index":');

interface Delivery {
  leaf_index: number;
  leaf_hash: string;
  event: Record<string, unknown>;
}

async function batchFrom(q: Queryable, from: number): Promise<Delivery[]> {
  const { rows } = await q.query<
    EventRow & { leaf_index: number; leaf_hash: Uint8Array; personal_from: number }
  >(
    `SELECT l.leaf_index, l.hash AS leaf_hash, s.personal_from, ${EVENT_COLUMNS}
       FROM trellis.audit_leaves l JOIN trellis.audit_events e ON e.seq = l.event_seq
            ${SUBJECT_KEY_JOIN} CROSS JOIN trellis.audit_log_state s
      WHERE l.leaf_index >= $1 ORDER BY l.leaf_index LIMIT $2`,
    [from, BATCH],
  );
  return rows.map(({ leaf_index, leaf_hash, personal_from, ...event }) => ({
    leaf_index: Number(leaf_index),
    leaf_hash: Buffer.from(leaf_hash).toString("base64"),
    event: JSON.parse(publicForm(event as EventRow, Number(leaf_index) < Number(personal_from))),
  }));
}

/**
 * Where the last "\n" before byte `end` is, reading back a window at a time and at most `limit`
 * bytes: its offset, -1 when the file has none before `end`, or undefined when `limit` ran out.
 */
function lastNewline(
  fd: number,
  end: number,
  limit = Number.POSITIVE_INFINITY,
): number | undefined {
  const stop = Math.max(0, end - limit);
  const buf = Buffer.alloc(Math.min(WINDOW, end - stop));
  for (let hi = end; hi > stop; ) {
    const lo = Math.max(stop, hi - buf.length);
    const got = readSync(fd, buf, 0, hi - lo, lo);
    if (got !== hi - lo) throw new Error(`short read at byte ${lo}`);
    const at = buf.subarray(0, got).lastIndexOf(NL);
    if (at >= 0) return lo + at;
    hi = lo;
  }
  return stop === 0 ? -1 : undefined;
}

/** What the file says about itself, before anything is written or cut. */
type FileState =
  | { kind: "new" }
  /** `end`: the end of the last complete line; `size - end` bytes after it are a torn line. */
  | { kind: "audit"; last?: Delivery; end: number; size: number }
  | { kind: "foreign"; reason: string };

function readFileState(fd: number): FileState {
  const size = fstatSync(fd).size;
  if (size === 0) return { kind: "new" };
  const lastByte = Buffer.alloc(1);
  readSync(fd, lastByte, 0, 1, size - 1);
  const end = lastByte[0] === NL ? size : (lastNewline(fd, size) as number) + 1;
  if (end < size) {
    // A torn line is ours only if it starts the way every line of ours does: cutting bytes
    // someone else appended would destroy them.
    const head = Buffer.alloc(Math.min(LINE_START.length, size - end));
    readSync(fd, head, 0, head.length, end);
    if (!head.equals(LINE_START.subarray(0, head.length)))
      return {
        kind: "foreign",
        reason: `its last ${size - end} bytes (after the last complete line) are not the start of an audit line`,
      };
  }
  if (end === 0) return { kind: "audit", end, size };
  const start = lastNewline(fd, end - 1, WINDOW);
  if (start === undefined)
    return { kind: "foreign", reason: `its last complete line is longer than ${WINDOW} bytes` };
  const line = Buffer.alloc(end - 1 - (start + 1));
  readSync(fd, line, 0, line.length, start + 1);
  let last: Partial<Delivery> | null = null;
  try {
    last = JSON.parse(line.toString("utf8"));
  } catch {}
  if (
    typeof last !== "object" ||
    last === null ||
    !Number.isSafeInteger(last.leaf_index) ||
    (last.leaf_index as number) < 0 ||
    typeof last.leaf_hash !== "string" ||
    typeof last.event !== "object" ||
    last.event === null
  )
    return { kind: "foreign", reason: "its last complete line is not an audit line" };
  return { kind: "audit", last: last as Delivery, end, size };
}

/** Backoff after failures: 1 s doubling to 60 s. */
function backoff(clock: Clock) {
  const s = { failures: 0, retryAt: 0 };
  return {
    state: s,
    due: () => clock.now().getTime() >= s.retryAt,
    ok() {
      s.failures = 0;
      s.retryAt = 0;
    },
    fail() {
      s.failures += 1;
      s.retryAt = clock.now().getTime() + Math.min(60_000, 1000 * 2 ** (s.failures - 1));
      return s.failures;
    },
  };
}

export function auditSinks(deps: {
  db: Db;
  clock: Clock;
  file?: string;
  webhook?: { url: string; secret: string };
  intervalMs: number;
  log?: { warn(obj: unknown, msg: string): void; error(obj: unknown, msg: string): void };
  fetch?: typeof fetch;
}) {
  const { db, clock, file, webhook } = deps;
  const doFetch = deps.fetch ?? fetch;
  let filePos: number | undefined;
  const fileRetry = backoff(clock);
  const hookRetry = backoff(clock);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  /**
   * The leaf after the file's last complete line, once the file is known to be this log's own:
   * a torn line after it is cut off first. A string says why the file is refused (untouched).
   */
  async function resumeFile(path: string): Promise<number | string> {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
    let state: FileState;
    try {
      state = readFileState(fd);
    } finally {
      closeSync(fd);
    }
    if (state.kind === "new") return 0;
    if (state.kind === "foreign") return state.reason;
    if (state.last) {
      const { leaf_index, leaf_hash } = state.last;
      const { rows } = await db.query<{ hash: Uint8Array | null; tree_size: number }>(
        `SELECT (SELECT hash FROM trellis.audit_leaves WHERE leaf_index = $1) AS hash, tree_size
           FROM trellis.audit_log_state`,
        [leaf_index],
      );
      const row = rows[0];
      if (!row?.hash)
        return `its last line is leaf ${leaf_index} but this log has ${Number(row?.tree_size ?? 0)} leaves (another log's file, or a database older than the file)`;
      if (Buffer.from(row.hash).toString("base64") !== leaf_hash)
        return `its last line is leaf ${leaf_index} with another hash than this log's (another log's file)`;
    }
    if (state.end < state.size) {
      const rw = openSync(path, "r+");
      try {
        // Written since it was read: not the file just checked, so not ours to cut.
        if (fstatSync(rw).size !== state.size) throw new Error(`${path} changed while being read`);
        ftruncateSync(rw, state.end);
        fsyncSync(rw);
      } finally {
        closeSync(rw);
      }
      deps.log?.warn(
        { file: path, droppedBytes: state.size - state.end, keptBytes: state.end },
        `audit file sink: dropped a torn last line of ${state.size - state.end} bytes (a write that never completed); resuming after the last complete line`,
      );
    }
    return state.last ? state.last.leaf_index + 1 : 0;
  }

  /** Appends what the file lacks after `from`; returns how many lines it wrote. */
  async function append(path: string, from: number): Promise<number> {
    const batch = await batchFrom(db, from);
    if (batch.length === 0) return 0;
    const bytes = Buffer.from(batch.map((d) => `${JSON.stringify(d)}\n`).join(""));
    const fd = openSync(path, "a", 0o600);
    try {
      // writeSync may write less than asked (a full disk) without throwing.
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    filePos = (batch.at(-1) as Delivery).leaf_index + 1;
    return batch.length;
  }

  /** One file batch; never throws: a failure backs off, and the position is read again after. */
  async function fileStep(): Promise<number> {
    if (!file || !fileRetry.due()) return 0;
    try {
      if (filePos === undefined) {
        const pos = await resumeFile(file);
        if (typeof pos === "string") {
          const failures = fileRetry.fail();
          deps.log?.error(
            { file, reason: pos, failures },
            `audit file sink refuses ${file}: ${pos}; the file is left untouched (move it aside or point TRELLIS_AUDIT_SINK_FILE elsewhere), retrying`,
          );
          return 0;
        }
        filePos = pos;
      }
      const n = await append(file, filePos);
      fileRetry.ok();
      return n;
    } catch (err) {
      // The write may have stopped part way: what the file holds is known only by reading it.
      filePos = undefined;
      const failures = fileRetry.fail();
      deps.log?.warn({ err, file, failures }, "audit file sink failed; retrying");
      return 0;
    }
  }

  const NAME = "webhook";

  /** Delivers one batch to the webhook; returns how many it delivered (0 when caught up or backing off). */
  async function hookStep(): Promise<number> {
    if (!webhook || !hookRetry.due()) return 0;
    try {
      const n = await db.transaction(async (tx) => {
        const { rows: lock } = await tx.query<{ ok: boolean }>(
          "SELECT pg_try_advisory_xact_lock(hashtext('trellis.audit_sink.webhook')) AS ok",
        );
        if (!lock[0]?.ok) return 0; // another server is delivering
        await tx.query(
          `INSERT INTO trellis.audit_sink_positions (name, delivered, updated_at) VALUES ($1, 0, $2)
           ON CONFLICT (name) DO NOTHING`,
          [NAME, clock.now()],
        );
        const { rows } = await tx.query<{ delivered: number }>(
          "SELECT delivered FROM trellis.audit_sink_positions WHERE name = $1 FOR UPDATE",
          [NAME],
        );
        const batch = await batchFrom(tx, Number(rows[0]?.delivered ?? 0));
        if (batch.length === 0) return 0;
        const body = JSON.stringify({ events: batch });
        const timestamp = String(Math.floor(clock.now().getTime() / 1000));
        const signature = createHmac("sha256", webhook.secret)
          .update(`${timestamp}.${body}`)
          .digest("hex");
        const res = await doFetch(webhook.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-trellis-timestamp": timestamp,
            "x-trellis-signature": `sha256=${signature}`,
            "x-trellis-leaves": `${batch[0]?.leaf_index}-${batch.at(-1)?.leaf_index}`,
          },
          body,
          redirect: "error",
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) throw new Error(`the webhook answered ${res.status}`);
        await tx.query(
          "UPDATE trellis.audit_sink_positions SET delivered = $2, updated_at = $3 WHERE name = $1",
          [NAME, (batch.at(-1) as Delivery).leaf_index + 1, clock.now()],
        );
        return batch.length;
      });
      hookRetry.ok();
      return n;
    } catch (err) {
      const failures = hookRetry.fail();
      deps.log?.warn({ err, failures }, "audit webhook delivery failed; retrying");
      return 0;
    }
  }

  /** Runs one sink's steps until it is caught up or backing off. */
  async function drain(step: () => Promise<number>): Promise<void> {
    for (let i = 0; i < 10_000; i++) if ((await step()) === 0) return;
  }

  /**
   * Delivers until every sink is caught up or backing off. The sinks run side by side, each
   * with its own backoff, so a refused file or a webhook that is down or slow (up to its 10 s
   * timeout per batch) holds up only itself.
   */
  async function runOnce(): Promise<void> {
    await Promise.all([drain(fileStep), drain(hookStep)]);
  }

  function start() {
    if (!file && !webhook) return;
    timer = setInterval(() => {
      if (running) return;
      running = runOnce()
        .catch((err) => deps.log?.warn({ err }, "audit sink delivery failed"))
        .finally(() => {
          running = undefined;
        });
    }, deps.intervalMs);
    timer.unref();
  }

  async function stop() {
    if (timer) clearInterval(timer);
    await running;
  }

  return {
    start,
    stop,
    runOnce,
    status: () => ({ file: { ...fileRetry.state }, webhook: { ...hookRetry.state } }),
  };
}
