import { createHmac, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseCosignerKey, verifyCosignature } from "@trellis/sdk/verify";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import type { AuditContext, AuditService } from "../audit/audit.service";
import {
  appendLeaves,
  canonicalLeafHash,
  consistencyProof,
  EVENT_COLUMNS,
  EVENT_FROM,
  type EventRow,
  eventLeafHash,
  eventSalt,
  HASHED_EVENT_COLUMNS,
  type HashedTuple,
  hashedEvent,
  hashedRow,
  inclusionProof,
  personalCommitment,
  rootOf,
} from "./log";
import type { Hash } from "./merkle";
import { erasureDigest, type NoteSigner } from "./note";
import { anchorNames, checkLeaf, dbLeaves, pruneMarks } from "./verify-log";

// Any constant; only one server integrates at a time (per tick, transaction-scoped).
const SEQUENCER_LOCK = 7_311_2026;
/** Most events one tick integrates; the rest wait for the next tick. */
const BATCH = 5000;

const b64 = (h: Uint8Array) => Buffer.from(h).toString("base64");
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/**
 * A seq value the sequencer passed without seeing its event: its transaction was still running
 * (or had not even got its transaction id: an INSERT draws the seq first), or it rolled back.
 * After HOLE_SETTLE_MS the hole is tied to a later snapshot's xmax; once every transaction
 * below that has ended (a snapshot's xmin reaches it) and the event is still not there, it
 * never will be.
 */
interface Hole {
  seq: number;
  since: number;
  xmax?: string;
}
const HOLE_SETTLE_MS = 1000;
/** Beyond this many open holes (a sequence jumped far), the rest are not tracked; `audit verify` reports any event that then stays out of the log. */
const MAX_HOLES = 100_000;

function nextHoles(
  holes: Hole[],
  late: EventRow[],
  fresh: EventRow[],
  hi: number,
  snap: { xmin: string; xmax: string },
  now: number,
): Hole[] {
  const filled = new Set(late.map((r) => Number(r.seq)));
  const kept: Hole[] = [];
  for (const h of holes) {
    if (filled.has(Number(h.seq))) continue;
    if (h.xmax === undefined) {
      kept.push(now - h.since >= HOLE_SETTLE_MS ? { ...h, xmax: snap.xmax } : h);
    } else if (BigInt(snap.xmin) < BigInt(h.xmax)) {
      kept.push(h); // a transaction that could still write it may be running
    }
  }
  let expect = hi + 1;
  for (const r of fresh) {
    for (let s = expect; s < Number(r.seq) && kept.length < MAX_HOLES; s++)
      kept.push({ seq: s, since: now });
    expect = Number(r.seq) + 1;
  }
  return kept;
}

/** The sequencer stopped signing: the log and what was published disagree. */
export class LogHalted extends Error {}

interface Checkpoint {
  treeSize: number;
  root: Hash;
  note: string;
}

/**
 * The verifiable audit log. A sequencer tick, on whichever server takes the lock first, picks
 * the committed events not yet in the tree (by transaction: see README), appends them as leaves
 * in seq order, and signs a checkpoint of the new tree, which goes to the anchor folder after
 * commit. Before signing it checks that the last checkpoint's root is still the tree's at that
 * size; at start it checks the anchors too. On any disagreement it stops signing (LogHalted)
 * and says how to recover; reads and proofs keep working.
 */
export function transparencyService(deps: {
  db: Db;
  clock: Clock;
  signer: NoteSigner;
  mergeDelayMs: number;
  anchorDir: string;
  /** Days audit events are kept in full (0: forever). */
  retentionDays?: number;
  audit?: Pick<AuditService, "record">;
  /** Keys the hash that names an erased subject in its `audit.erase` event. */
  erasureKey?: Buffer;
  /** An erasure also revokes the person's tokens and replaces their subject (tokens module). */
  forgetSubjectTx?: (
    tx: Queryable,
    subject: string,
    replacement: string,
  ) => Promise<{ tokens: number; after: () => void }>;
  /** A witness every new checkpoint is sent to (C2SP tlog-witness). */
  witness?: { url: string; key: string };
  log?: { error(obj: unknown, msg: string): void };
}) {
  const { db, clock, signer, mergeDelayMs, anchorDir } = deps;
  let pruneTimer: NodeJS.Timeout | undefined;
  let pruning: Promise<unknown> | undefined;
  let halted: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  /** The last pass found the lock taken (another server, or this one's timer, was integrating). */
  let lockBusy = false;

  const halt = (reason: string) => {
    if (!halted) deps.log?.error({ reason }, "audit log: checkpoint signing stopped");
    halted = reason;
    throw new LogHalted(reason);
  };

  async function latestCheckpoint(q: Queryable = db): Promise<Checkpoint | undefined> {
    const { rows } = await q.query<{ tree_size: number; root: Uint8Array; note: string }>(
      "SELECT tree_size, root, note FROM trellis.audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
    );
    const r = rows[0];
    return r && { treeSize: Number(r.tree_size), root: new Uint8Array(r.root), note: r.note };
  }

  /** Writes a checkpoint to the anchor folder: a new file, fsynced; an existing one must match. */
  function anchor(cp: Checkpoint) {
    mkdirSync(anchorDir, { recursive: true });
    const file = join(anchorDir, `checkpoint-${String(cp.treeSize).padStart(16, "0")}`);
    let fd: number;
    try {
      fd = openSync(file, "wx", 0o444);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (readFileSync(file, "utf8") !== cp.note)
        halt(
          `The anchor ${file} holds another checkpoint of size ${cp.treeSize}: the log forked. Keep both for the investigation; do not delete the anchor.`,
        );
      return;
    }
    try {
      writeSync(fd, cp.note);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const dir = openSync(anchorDir, "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** The newest anchored checkpoint (size and root), read back from its file. */
  function newestAnchor(): { treeSize: number; root: Hash; file: string } | undefined {
    let last: string | undefined;
    try {
      last = anchorNames(anchorDir).at(-1);
    } catch {
      return undefined;
    }
    if (!last) return undefined;
    const file = join(anchorDir, last);
    const [, size, root] = readFileSync(file, "utf8").split("\n");
    return {
      treeSize: Number(size),
      root: new Uint8Array(Buffer.from(root ?? "", "base64")),
      file,
    };
  }

  /** At start: the database must not be behind, or disagree with, what was anchored. */
  async function checkAnchors(): Promise<void> {
    const a = newestAnchor();
    if (!a) return;
    const { rows } = await db.query<{ tree_size: number }>(
      "SELECT tree_size FROM trellis.audit_log_state",
    );
    const size = Number(rows[0]?.tree_size ?? 0);
    if (a.treeSize > size)
      halt(
        `The audit log (${size} events in the tree) is behind its published checkpoint ${a.file} (${a.treeSize}). The database was restored from an older backup or rolled back. Restore a backup taken after that checkpoint; if none exists, keep this database read-only, move the anchor folder aside for the auditors, and start a new log (a new anchor folder) while recording the gap in your incident report.`,
      );
    if (!sameBytes(await rootOf(db, a.treeSize), a.root))
      halt(
        `The audit tree at size ${a.treeSize} does not match its published checkpoint ${a.file}: events were changed after they were published. Run \`trellis audit verify\` to find the first bad event.`,
      );
  }

  /**
   * Every actor gets a random key the first time the sequencer meets them; their events' salts
   * derive from it (see log.ts `hashedEvent`). Only the sequencer creates keys and only an
   * erasure deletes them, both under the sequencer's lock, so the keys read are the keys used.
   */
  async function giveSubjectKeys(tx: Queryable, rows: EventRow[]): Promise<void> {
    const missing = new Map<string, Uint8Array>();
    for (const r of rows)
      if (typeof r.actor_id === "string" && !r.subject_key && !r.erased_commitment)
        missing.set(r.actor_id, new Uint8Array(randomBytes(32)));
    if (missing.size === 0) return;
    await tx.query(
      `INSERT INTO trellis.audit_subject_keys (subject, key, created_at)
       SELECT * FROM unnest($1::text[], $2::bytea[], $3::timestamptz[])`,
      [
        [...missing.keys()],
        [...missing.values()].map((k) => Buffer.from(k)),
        [...missing.keys()].map(() => clock.now()),
      ],
    );
    for (const r of rows)
      if (typeof r.actor_id === "string" && !r.subject_key && !r.erased_commitment)
        r.subject_key = missing.get(r.actor_id) ?? null;
  }

  /**
   * One sequencer pass; returns the checkpoint it signed, if any. The snapshot is taken by the
   * statement that takes the lock, so a pass that got the lock just as another committed sees
   * the state row as changed (serialization failure, 40001): it runs again, fresh.
   */
  async function tick(): Promise<Checkpoint | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await tickOnce();
      } catch (err) {
        if ((err as { code?: string }).code !== "40001" || attempt >= 2) throw err;
      }
    }
  }

  async function tickOnce(): Promise<Checkpoint | undefined> {
    if (halted) return undefined;
    const now = clock.now().getTime();
    const signed = await db.transaction(async (tx) => {
      // One snapshot for the whole pass: what is visible and which transactions were running.
      await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
      const { rows: lock } = await tx.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_xact_lock($1) AS ok",
        [SEQUENCER_LOCK],
      );
      lockBusy = !lock[0]?.ok;
      if (lockBusy) return undefined;
      const { rows: st } = await tx.query<{
        tree_size: number;
        hi_seq: number;
        holes: Hole[];
        personal_from: number;
        xmin: string;
        xmax: string;
      }>(
        `SELECT tree_size, hi_seq, holes, personal_from,
                pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
                pg_snapshot_xmax(pg_current_snapshot())::text AS xmax
           FROM trellis.audit_log_state FOR UPDATE`,
      );
      const state = st[0];
      if (!state) throw new Error("trellis.audit_log_state is empty");
      const size = Number(state.tree_size);
      const hi = Number(state.hi_seq);
      const personalFrom = Number(state.personal_from);
      // Leaves of the first form (below personal_from) hash the stored columns as they are;
      // the second form's rows come as tuples made into rows of one shape, as `audit verify`
      // reads them (see hashedRow).
      const read = async (where: string, args: unknown[]): Promise<EventRow[]> =>
        size < personalFrom
          ? (await tx.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ${EVENT_FROM} ${where}`, args))
              .rows
          : (
              await tx.queryTuples<HashedTuple>(
                `SELECT ${HASHED_EVENT_COLUMNS} FROM ${EVENT_FROM} ${where}`,
                args,
              )
            ).map(hashedRow);
      const fresh = await read("WHERE e.seq > $1 ORDER BY e.seq LIMIT $2", [hi, BATCH]);
      const holes = state.holes;
      const late =
        holes.length > 0
          ? await read("WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq", [holes.map((h) => h.seq)])
          : [];
      const rows = [...late, ...fresh];
      const newHi = fresh.length > 0 ? Number(fresh.at(-1)?.seq) : hi;
      await giveSubjectKeys(tx, rows);
      const newSize = await appendLeaves(
        tx,
        size,
        rows.map((r, i) => ({
          seq: Number(r.seq),
          hash: eventLeafHash(r, size + i < personalFrom),
        })),
      );
      await tx.query(
        "UPDATE trellis.audit_log_state SET tree_size = $1, hi_seq = $2, holes = $3::jsonb",
        [newSize, newHi, JSON.stringify(nextHoles(holes, late, fresh, hi, state, now))],
      );
      if (newSize === size) return undefined;
      const last = await latestCheckpoint(tx);
      if (last && !sameBytes(await rootOf(tx, last.treeSize), last.root))
        halt(
          `The audit tree no longer matches checkpoint ${last.treeSize}: stored events or hashes were changed. Run \`trellis audit verify\` to find the first bad event; no checkpoint is signed until it is resolved.`,
        );
      const root = await rootOf(tx, newSize);
      const note = signer.signCheckpoint(newSize, root);
      await tx.query(
        "INSERT INTO trellis.audit_checkpoints (tree_size, root, note, created_at) VALUES ($1, $2, $3, $4)",
        [newSize, Buffer.from(root), note, clock.now()],
      );
      return { treeSize: newSize, root, note };
    });
    if (signed) {
      anchor(signed);
      // A witness that is down never stops the log: the next checkpoint tries again.
      await witnessCheckpoint(signed).catch((err) =>
        deps.log?.error({ err }, "audit log: the witness did not cosign"),
      );
    }
    return signed;
  }

  /**
   * Sends a checkpoint to the witness with a consistency proof from the last size it cosigned
   * for us (a 409 names its size: resend from there), verifies the cosignature it returns with
   * its key, and keeps it.
   */
  async function witnessCheckpoint(cp: Checkpoint): Promise<void> {
    const w = deps.witness;
    if (!w) return;
    const name = parseCosignerKey(w.key).name;
    const { rows } = await db.query<{ n: number | null }>(
      "SELECT max(tree_size) AS n FROM trellis.audit_cosignatures WHERE witness = $1",
      [name],
    );
    let old = Number(rows[0]?.n ?? 0);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (old > cp.treeSize)
        throw new Error(`the witness has size ${old}, beyond this log's ${cp.treeSize}`);
      const proof =
        old > 0 && old < cp.treeSize ? await consistencyProof(db, old, cp.treeSize) : [];
      const body = `old ${old}\n${proof.map((h) => `${b64(h)}\n`).join("")}\n${cp.note}`;
      const res = await fetch(`${w.url}/witness/add-checkpoint`, {
        method: "POST",
        headers: { "content-type": "text/plain; charset=utf-8" },
        body,
        redirect: "error",
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (res.status === 409 && /^\d+\n?$/.test(text)) {
        old = Number(text.trim());
        continue;
      }
      if (!res.ok) throw new Error(`the witness answered ${res.status}: ${text.slice(0, 200)}`);
      const line = text.trimEnd();
      verifyCosignature(`${cp.note}${line}\n`, w.key); // throws unless the witness signed this
      await db.query(
        `INSERT INTO trellis.audit_cosignatures (tree_size, witness, line, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
        [cp.treeSize, name, line, clock.now()],
      );
      return;
    }
  }

  /** The newest checkpoint with every cosignature the witnesses returned for it. */
  async function publishedCheckpoint(): Promise<string | undefined> {
    const cp = await latestCheckpoint();
    if (!cp) return undefined;
    const { rows } = await db.query<{ line: string }>(
      "SELECT line FROM trellis.audit_cosignatures WHERE tree_size = $1 ORDER BY witness",
      [cp.treeSize],
    );
    return cp.note + rows.map((r) => `${r.line}\n`).join("");
  }

  /** Runs ticks until nothing is left (tests, shutdown). */
  /**
   * Runs passes until nothing is left (tests, shutdown). While another server holds the lock,
   * it waits for that pass (up to 10 s) instead of taking "no pass" for "nothing left".
   */
  async function flush(): Promise<void> {
    await running;
    let waited = 0;
    for (let i = 0; i < 1000; i++) {
      const r = await tick();
      if (r) continue;
      if (!lockBusy || waited >= 10_000) return;
      await new Promise((ok) => setTimeout(ok, 10));
      waited += 10;
    }
  }

  async function start() {
    await checkAnchors().catch((err) => {
      if (!(err instanceof LogHalted)) throw err;
    });
    // Half the merge delay between ticks: an event waits at most about one delay.
    timer = setInterval(
      () => {
        if (running) return;
        running = tick()
          .catch((err) => {
            if (!(err instanceof LogHalted))
              deps.log?.error({ err }, "audit sequencer tick failed");
          })
          .finally(() => {
            running = undefined;
          });
      },
      Math.max(5, Math.floor(mergeDelayMs / 2)),
    );
    timer.unref();
    if ((deps.retentionDays ?? 0) > 0) {
      const pruneNow = () => {
        if (pruning) return;
        pruning = prune()
          .catch((err) => deps.log?.error({ err }, "audit prune failed"))
          .finally(() => {
            pruning = undefined;
          });
      };
      // At start (a shorter retention takes effect on restart, not an hour later), then hourly.
      // Not awaited: a first prune of a large backlog must not hold up serving.
      pruneNow();
      pruneTimer = setInterval(pruneNow, 3_600_000);
      pruneTimer.unref();
    }
  }

  async function stop() {
    if (timer) clearInterval(timer);
    if (pruneTimer) clearInterval(pruneTimer);
    await running;
    await pruning;
  }

  /**
   * Retention: events older than the retention period, and already in the tree, lose their rows
   * (their leaves keep the hashes, so every checkpoint still verifies). The prune is an audit
   * event itself (`audit.prune`, `diff.below_leaf`), written first, in the same transaction;
   * prune events are never pruned. Returns the leaf below which rows are gone, and how many went.
   */
  async function prune(): Promise<{ below: number; deleted: number }> {
    const days = deps.retentionDays ?? 0;
    if (days <= 0 || !deps.audit) return { below: 0, deleted: 0 };
    const audit = deps.audit;
    const cutoff = new Date(clock.now().getTime() - days * 86_400_000);
    return db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [SEQUENCER_LOCK]);
      const { rows } = await tx.query<{ keep: number | null; size: number; personal_from: number }>(
        `SELECT (SELECT min(l.leaf_index) FROM trellis.audit_leaves l
                   JOIN trellis.audit_events e ON e.seq = l.event_seq
                  WHERE e.occurred_at >= $1) AS keep,
                s.tree_size AS size, s.personal_from
           FROM trellis.audit_log_state s`,
        [cutoff],
      );
      const r = rows[0];
      const below = Number(r?.keep ?? r?.size ?? 0);
      // Where the last prune stopped: only prunes this log signed count (a forged mark, which
      // `audit verify` names, must not stop retention either).
      const done = (await pruneMarks(tx, signer.verifierKey)).below;
      if (below <= done) return { below: done, deleted: 0 };
      // The rows about to go are checked against their leaves first: "old" comes from their
      // own occurred_at, and a row backdated in SQL (or a leaf pointed at another row) must not
      // get this server's signature on its deletion, which would take the evidence with it.
      for await (const page of dbLeaves(tx, done, below, Number(r?.personal_from ?? 0))) {
        for (const leaf of page) {
          const c = checkLeaf(leaf, leaf.leaf_index, done);
          if ("problem" in c)
            halt(
              `Retention refused to prune: ${c.problem.message}. Run \`trellis audit verify\`; no checkpoint is signed until it is resolved.`,
            );
        }
        if (page.length === 0)
          halt("Retention refused to prune: leaves below the mark are missing.");
      }
      const pruneId = newId("event");
      await audit.record(
        {
          requestId: "retention",
          actorId: "system:retention",
          actorRole: "admin",
          appId: null,
          tokenId: null,
        },
        {
          action: "audit.prune",
          resourceType: "audit_log",
          eventId: pruneId,
          diff: {
            below_leaf: below,
            cutoff: cutoff.toISOString(),
            retention_days: days,
            // What tells this prune from one forged with database access alone.
            statement: signer.signStatement("audit.prune", {
              event: pruneId, // bound to this event: a copy in another event is refused
              below_leaf: below,
              cutoff: cutoff.toISOString(),
              retention_days: days,
            }),
          },
        },
        tx,
      );
      await tx.query("SELECT set_config('trellis.audit_prune_below', $1, true)", [String(below)]);
      const del = await tx.query(
        `DELETE FROM trellis.audit_events e USING trellis.audit_leaves l
          WHERE l.event_seq = e.seq AND l.leaf_index < $1 AND e.action <> 'audit.prune'`,
        [below],
      );
      return { below, deleted: del.rowCount };
    });
  }

  /**
   * Erasure (GDPR) of one data subject's personal data in the log: every event of theirs in the
   * tree loses its actor and `diff.personal` and keeps the commitment its leaf was built with;
   * their key (every salt) is deleted. Leaves, proofs and checkpoints do not change, so
   * `audit verify` still passes. The erasure is an `audit.erase` event whose resource is a keyed
   * hash of the subject (the operator can later tell whether someone was erased; nobody can
   * read the subject from it) and which the erased rows name (`erased_by`). Events written in
   * the last second, not in the tree yet, are counted as `pending`: erase again shortly. The
   * person's tokens are revoked and renamed in the same transaction (`tokens`): an erased
   * event's token id must not lead back to them.
   */
  async function erase(
    subject: string,
    ctx: AuditContext,
  ): Promise<{
    subject_tag: string;
    erased: number;
    pending: number;
    kept: number;
    tokens: number;
    event_id: string;
  }> {
    const audit = deps.audit;
    if (!audit) throw new Error("erasure needs the audit service");
    await tick().catch(() => undefined); // take in what was just written, if this server can
    const subjectTag = createHmac("sha256", deps.erasureKey ?? Buffer.alloc(32))
      .update(subject)
      .digest("base64url");
    const { after, ...result } = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [SEQUENCER_LOCK]);
      const { rows } = await tx.query<EventRow & { leaf_index: number; personal_from: number }>(
        `SELECT ${EVENT_COLUMNS}, l.leaf_index, s.personal_from
           FROM ${EVENT_FROM} JOIN trellis.audit_leaves l ON l.event_seq = e.seq
                CROSS JOIN trellis.audit_log_state s
          WHERE e.actor_id = $1`,
        [subject],
      );
      const { rows: pend } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM trellis.audit_events e
          WHERE e.actor_id = $1
            AND NOT EXISTS (SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = e.seq)`,
        [subject],
      );
      const erasable = rows
        .filter((r) => Number(r.leaf_index) >= Number(r.personal_from))
        .sort((a, b) => Number(a.seq) - Number(b.seq));
      const commitments = erasable.map((r) => {
        if (!r.subject_key) throw new TrellisError("audit_log_inconsistent");
        const personal = r.diff && typeof r.diff === "object" ? (r.diff.personal ?? null) : null;
        return Buffer.from(
          personalCommitment(eventSalt(r.subject_key, r.event_id), subject, personal),
        );
      });
      // The person's tokens first: their ids stay in the log, their subject must not.
      const forgot = (await deps.forgetSubjectTx?.(tx, subject, `erased:${subjectTag}`)) ?? {
        tokens: 0,
        after: () => {},
      };
      const result = {
        subject_tag: subjectTag,
        erased: erasable.length,
        pending: Number(pend[0]?.n ?? 0),
        kept: rows.length - erasable.length,
        tokens: forgot.tokens,
      };
      const eraseId = newId("event");
      const eventId = await audit.record(
        ctx,
        {
          action: "audit.erase",
          resourceType: "audit_subject",
          resourceId: subjectTag,
          eventId: eraseId,
          diff: {
            ...result,
            // Signs which rows this erasure empties: `audit verify` refuses an erasure (or an
            // erased row) that the log's key did not sign.
            statement: signer.signStatement("audit.erase", {
              event: eraseId,
              erased: erasable.length,
              events: erasureDigest(erasable.map((r) => r.event_id)),
            }),
          },
        },
        tx,
      );
      const { rows: me } = await tx.query<{ seq: number }>(
        "SELECT seq FROM trellis.audit_events WHERE event_id = $1",
        [eventId],
      );
      await tx.query("SELECT set_config('trellis.audit_erasure', $1, true)", [String(me[0]?.seq)]);
      if (erasable.length > 0)
        await tx.query(
          `UPDATE trellis.audit_events e
              SET actor_id = NULL, diff = e.diff - 'personal', erased_commitment = u.c, erased_by = $3
             FROM unnest($1::bigint[], $2::bytea[]) AS u(seq, c)
            WHERE e.seq = u.seq`,
          [erasable.map((r) => r.seq), commitments, me[0]?.seq],
        );
      // Leaves logged before erasure existed (`kept`) hash the actor itself and keep it; they
      // never used the key.
      await tx.query("DELETE FROM trellis.audit_subject_keys WHERE subject = $1", [subject]);
      return { ...result, event_id: eventId, after: forgot.after };
    });
    after(); // this server stops accepting the revoked tokens at once (others hear NOTIFY)
    return result;
  }

  /**
   * An event's inclusion proof against the newest checkpoint (or the given tree size): the event
   * exactly as hashed, and the opening of its personal commitment unless it was erased.
   */
  async function proof(eventId: string, atSize?: number) {
    const { rows } = await db.query<
      EventRow & { leaf_index: number | null; personal_from: number }
    >(
      `SELECT ${EVENT_COLUMNS},
              (SELECT l.leaf_index FROM trellis.audit_leaves l WHERE l.event_seq = e.seq) AS leaf_index,
              (SELECT personal_from FROM trellis.audit_log_state) AS personal_from
         FROM ${EVENT_FROM} WHERE e.event_id = $1`,
      [eventId],
    );
    const row = rows[0];
    if (!row) throw new TrellisError("not_found");
    const { leaf_index, personal_from, ...event } = row;
    if (leaf_index === null) throw new TrellisError("audit_not_integrated");
    const cp = await latestCheckpoint();
    const size = atSize ?? cp?.treeSize ?? 0;
    const treeSize = await currentSize();
    if (size > treeSize || Number(leaf_index) >= size)
      throw new TrellisError("proof_out_of_range", [
        {
          path: "/size",
          message: `the tree has ${treeSize} leaves; this event is leaf ${leaf_index}`,
        },
      ]);
    const { canonical, opening } = hashedEvent(
      event as EventRow,
      Number(leaf_index) < Number(personal_from),
    );
    const checkpoint = await checkpointAt(size);
    return {
      event: JSON.parse(canonical) as Record<string, unknown>,
      canonical,
      opening,
      erased: event.erased_commitment != null,
      leaf_index: Number(leaf_index),
      tree_size: size,
      leaf_hash: b64(canonicalLeafHash(canonical)),
      proof: (await inclusionProof(db, Number(leaf_index), size)).map(b64),
      root_hash: b64(await rootOf(db, size)),
      checkpoint,
    };
  }

  async function consistency(from: number, to: number) {
    const treeSize = await currentSize();
    if (from < 1 || from > to || to > treeSize)
      throw new TrellisError("proof_out_of_range", [
        { path: "/", message: `need 1 ≤ from ≤ to ≤ ${treeSize}` },
      ]);
    return {
      from,
      to,
      proof: (await consistencyProof(db, from, to)).map(b64),
      from_root: b64(await rootOf(db, from)),
      to_root: b64(await rootOf(db, to)),
      from_checkpoint: await checkpointAt(from),
      to_checkpoint: await checkpointAt(to),
    };
  }

  async function currentSize(): Promise<number> {
    const { rows } = await db.query<{ tree_size: number }>(
      "SELECT tree_size FROM trellis.audit_log_state",
    );
    return Number(rows[0]?.tree_size ?? 0);
  }

  async function checkpointAt(size: number): Promise<string | null> {
    const { rows } = await db.query<{ note: string }>(
      "SELECT note FROM trellis.audit_checkpoints WHERE tree_size = $1",
      [size],
    );
    return rows[0]?.note ?? null;
  }

  return {
    tick,
    flush,
    prune,
    start,
    stop,
    proof,
    consistency,
    erase,
    latestCheckpoint: () => latestCheckpoint(),
    publishedCheckpoint,
    status: () => ({ halted: halted ?? null }),
    signer,
  };
}

export type TransparencyService = ReturnType<typeof transparencyService>;
