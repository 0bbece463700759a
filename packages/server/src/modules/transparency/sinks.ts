import { createHmac } from "node:crypto";
import { closeSync, fsyncSync, openSync, readSync, statSync, writeSync } from "node:fs";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { EVENT_COLUMNS, type EventRow, publicForm, SUBJECT_KEY_JOIN } from "./log";

/**
 * Near-real-time copies of the audit log, in leaf order, off the request path:
 *  - a file: one NDJSON line per event `{"leaf_index","leaf_hash","event"}` (the event exactly as
 *    hashed: the public part and the personal commitment, never the personal part, so a copy
 *    outside the database does not outlive an erasure), fsynced per batch; it resumes after its own last line, so nothing is lost or doubled;
 *  - a webhook: batches POSTed with `x-trellis-signature: sha256=<HMAC(secret, timestamp "." body)>`
 *    and `x-trellis-timestamp`; a 2xx acknowledges the batch (position kept in the database, one
 *    server delivering at a time); anything else is retried with backoff (1 s doubling to 60 s)
 *    from the last acknowledged leaf. Receivers dedupe by leaf_index (at least once).
 */
const BATCH = 500;

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

/** The leaf index after the file's last complete line (0 for a new or empty file). */
function filePosition(path: string): number {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  const fd = openSync(path, "r");
  try {
    const len = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const lines = buf
      .toString("utf8")
      .split("\n")
      .filter((l) => l.length > 0);
    const last = JSON.parse(lines.at(-1) ?? "{}") as { leaf_index?: number };
    if (typeof last.leaf_index !== "number")
      throw new Error(`${path} does not end with an audit line`);
    return last.leaf_index + 1;
  } finally {
    closeSync(fd);
  }
}

export function auditSinks(deps: {
  db: Db;
  clock: Clock;
  file?: string;
  webhook?: { url: string; secret: string };
  intervalMs: number;
  log?: { warn(obj: unknown, msg: string): void };
  fetch?: typeof fetch;
}) {
  const { db, clock, file, webhook } = deps;
  const doFetch = deps.fetch ?? fetch;
  let filePos: number | undefined;
  let failures = 0;
  let retryAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  /** Appends what the file lacks; returns how many lines it wrote. */
  async function toFile(): Promise<number> {
    if (!file) return 0;
    filePos ??= filePosition(file);
    const batch = await batchFrom(db, filePos);
    if (batch.length === 0) return 0;
    const fd = openSync(file, "a", 0o600);
    try {
      writeSync(fd, batch.map((d) => `${JSON.stringify(d)}\n`).join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    filePos = (batch.at(-1) as Delivery).leaf_index + 1;
    return batch.length;
  }

  const NAME = "webhook";

  /** Delivers one batch to the webhook; returns how many it delivered (0 when caught up or backing off). */
  async function toWebhook(): Promise<number> {
    if (!webhook || clock.now().getTime() < retryAt) return 0;
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
      failures = 0;
      retryAt = 0;
      return n;
    } catch (err) {
      failures += 1;
      retryAt = clock.now().getTime() + Math.min(60_000, 1000 * 2 ** (failures - 1));
      deps.log?.warn({ err, failures }, "audit webhook delivery failed; retrying");
      return 0;
    }
  }

  /** Delivers until every sink is caught up (or the webhook is backing off). */
  async function runOnce(): Promise<void> {
    for (let i = 0; i < 10_000; i++) {
      const n = (await toFile()) + (await toWebhook());
      if (n === 0) return;
    }
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

  return { start, stop, runOnce, status: () => ({ failures, retryAt }) };
}
