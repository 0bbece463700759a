import { verifyCheckpoint } from "@trellis/sdk/verify";
import type { Queryable } from "../../db/db";
import {
  canonicalLeafHashB64,
  EVENT_COLUMNS_STORED,
  type EventRow,
  HASHED_COLUMNS,
  HASHED_PARTS,
  hashedEvent,
  SubjectKeyMissing,
} from "./log";
import { nodeHashB64 } from "./merkle";
import { verifierKeyFor } from "./note";

/**
 * `trellis audit verify`: everything the log claims, recomputed from the events themselves.
 * Every leaf is rehashed from its event row (RFC 8785) and compared with the stored leaf; the
 * tree is rebuilt from those hashes (a compact range: one hash per set bit of the size) and every
 * stored checkpoint's signature is checked and its root compared with the rebuilt root at its
 * size, which also proves all checkpoints consistent with one another. Events that are in the
 * database but not in the tree are reported. Stops at the first problem and names it.
 */
export interface VerifyProblem {
  kind:
    | "leaf_missing"
    | "event_missing"
    | "event_changed"
    | "checkpoint_signature"
    | "checkpoint_root"
    | "not_in_log"
    | "erasure_unlogged"
    | "tree_size"
    /** An export's leaves past its newest signed checkpoint: nothing vouches for them. */
    | "unsigned";
  message: string;
  event_id?: string;
  leaf_index?: number;
}

export interface VerifyReport {
  ok: boolean;
  tree_size: number;
  events: number;
  checkpoints: number;
  /** Leaves whose events were pruned by retention (their hashes stand for them). */
  pruned: number;
  problem?: VerifyProblem;
}

const PAGE = 10_000;

/** A compact range [0, n): the roots of the perfect subtrees, left to right. */
class CompactRange {
  private readonly stack: Array<{ size: number; hash: string }> = [];
  size = 0;
  /** Appends a leaf hash (base64). */
  append(h: string) {
    let size = 1;
    let hash = h;
    let top = this.stack.at(-1);
    while (top && top.size === size) {
      this.stack.pop();
      hash = nodeHashB64(top.hash, hash);
      size *= 2;
      top = this.stack.at(-1);
    }
    this.stack.push({ size, hash });
    this.size += 1;
  }
  /** MTH of the leaves so far, base64 (RFC 9162: the right-most subtrees fold first). */
  root(): string | undefined {
    let acc: string | undefined;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const s = this.stack[i] as { hash: string };
      acc = acc ? nodeHashB64(s.hash, acc) : s.hash;
    }
    return acc;
  }
}

/**
 * One leaf as a verifier sees it: its stored hash and the event as its leaf hashes it
 * (canonical JSON; null when pruned or gone), or why that form cannot be made.
 */
export interface LeafRecord {
  leaf_index: number;
  /** base64. */
  leaf_hash: string;
  canonical: string | null;
  event_id?: string;
  /** The event's seq, for messages about a missing event. */
  event_seq?: number;
  /** The event is there but its hashed form cannot be rebuilt (e.g. its subject key is gone). */
  unbuildable?: string;
}

/**
 * One leaf's own check: its event rehashed against the stored leaf hash (a missing event is
 * accepted only below `prunedBelow`). Returns the hash the tree takes, or the problem.
 */
export function checkLeaf(
  r: LeafRecord,
  i: number,
  prunedBelow: number,
): { hash: string; pruned: boolean } | { problem: VerifyProblem } {
  if (r.unbuildable !== undefined)
    return {
      problem: {
        kind: "event_changed",
        leaf_index: i,
        event_id: r.event_id,
        message: `event ${r.event_id} (leaf ${i}): ${r.unbuildable}`,
      },
    };
  if (r.canonical === null) {
    if (i >= prunedBelow)
      return {
        problem: {
          kind: "event_missing",
          leaf_index: i,
          message: `leaf ${i}${r.event_seq !== undefined ? ` is event seq ${r.event_seq}, which` : "'s event"} is no longer there (deleted)`,
        },
      };
    return { hash: r.leaf_hash, pruned: true }; // the hash stands for it
  }
  const h = canonicalLeafHashB64(r.canonical);
  if (r.leaf_hash !== h)
    return {
      problem: {
        kind: "event_changed",
        leaf_index: i,
        event_id: r.event_id,
        message: `event ${r.event_id} (leaf ${i}) differs from what was logged: the event or its stored hash was changed`,
      },
    };
  return { hash: h, pruned: false };
}

/**
 * The verification itself, over any source of leaves in index order, a page at a time (the
 * database, or an export file): each event rehashed against its leaf, the tree rebuilt, every
 * checkpoint's signature and root checked at its size. Missing events are accepted only below
 * `prunedBelow`.
 */
export async function verifyLeaves(
  leaves: AsyncIterable<LeafRecord[]>,
  o: {
    size: number;
    checkpoints: Array<{ size: number; note: string }>;
    key: string;
    prunedBelow: number;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: true,
    tree_size: o.size,
    events: 0,
    checkpoints: 0,
    pruned: 0,
  };
  const fail = (problem: VerifyProblem): VerifyReport => ({ ...report, ok: false, problem });
  const last = o.checkpoints.at(-1);
  if (last && last.size > o.size)
    return fail({
      kind: "tree_size",
      message: `checkpoint ${last.size} is larger than the tree (${o.size} leaves): leaves were removed`,
    });
  const range = new CompactRange();
  let next = 0;
  let i = 0;
  const checkpointsHere = (): VerifyProblem | undefined => {
    while (
      next < o.checkpoints.length &&
      (o.checkpoints[next] as { size: number }).size === range.size
    ) {
      const cp = o.checkpoints[next] as { size: number; note: string };
      let signedRoot: Uint8Array;
      try {
        const v = verifyCheckpoint(cp.note, o.key);
        if (v.treeSize !== cp.size) throw new Error("its size is not its row's");
        signedRoot = v.rootHash;
      } catch (err) {
        return {
          kind: "checkpoint_signature",
          message: `checkpoint ${cp.size} does not verify: ${(err as Error).message}`,
        };
      }
      if (Buffer.from(signedRoot).toString("base64") !== range.root())
        return {
          kind: "checkpoint_root",
          message: `checkpoint ${cp.size} signs another root than the events give (a changed leaf before it, or a forked checkpoint)`,
        };
      report.checkpoints += 1;
      next += 1;
    }
    return undefined;
  };
  // Pages, not single leaves, cross the async boundary: a promise per leaf was a tenth of the
  // verifier's time.
  pages: for await (const page of leaves) {
    for (const r of page) {
      if (i >= o.size) break pages;
      if (Number(r.leaf_index) !== i) {
        const found = Number(r.leaf_index);
        // What comes instead says more than "missing": a repeat or a leaf out of its place.
        const instead =
          found < i
            ? `leaf ${found} again (a duplicate or leaves out of order)`
            : `leaf ${found} (leaves removed or out of order)`;
        return fail({
          kind: "leaf_missing",
          leaf_index: i,
          message: `leaf ${i} is missing: found ${instead} where it should be`,
        });
      }
      const c = checkLeaf(r, i, o.prunedBelow);
      if ("problem" in c) return fail(c.problem);
      range.append(c.hash);
      if (c.pruned) report.pruned += 1;
      else report.events += 1;
      if (next < o.checkpoints.length) {
        const bad = checkpointsHere();
        if (bad) return fail(bad);
      }
      i += 1;
      if (i % PAGE === 0 || i === o.size) o.onProgress?.(i, o.size);
    }
  }
  if (i < o.size)
    return fail({ kind: "leaf_missing", leaf_index: i, message: `leaf ${i} is missing` });
  if (next < o.checkpoints.length) {
    const cp = o.checkpoints[next] as { size: number };
    return fail({
      kind: "tree_size",
      message: `checkpoint ${cp.size} is not at a size of the tree`,
    });
  }
  return report;
}

export interface VerifyOptions {
  verifierKey?: string;
  onProgress?: (done: number, total: number) => void;
}

export async function verifyLog(q: Queryable, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const { rows: st } = await q.query<{ tree_size: number; personal_from: number }>(
    "SELECT tree_size, personal_from FROM trellis.audit_log_state",
  );
  const size = Number(st[0]?.tree_size ?? 0);
  const personalFrom = Number(st[0]?.personal_from ?? 0);
  const { rows: keyRows } = await q.query<{ origin: string; public_key: Uint8Array }>(
    "SELECT origin, public_key FROM trellis.audit_log_keys ORDER BY created_at LIMIT 1",
  );
  const { rows: cps } = await q.query<{ tree_size: number; note: string }>(
    "SELECT tree_size, note FROM trellis.audit_checkpoints ORDER BY tree_size",
  );
  // Rows the log itself says were pruned (retention): below the highest `audit.prune` mark.
  const { rows: pr } = await q.query<{ below: number | null }>(
    "SELECT max((diff->>'below_leaf')::bigint) AS below FROM trellis.audit_events WHERE action = 'audit.prune'",
  );
  const key =
    opts.verifierKey ??
    (keyRows[0] ? verifierKeyFor(keyRows[0].origin, new Uint8Array(keyRows[0].public_key)) : "");
  const checkpoints = cps.map((c) => ({ size: Number(c.tree_size), note: c.note }));
  const prunedBelow = Number(pr[0]?.below ?? 0);
  const report = await verifyLeaves(dbLeaves(q, 0, size, personalFrom), {
    size,
    checkpoints,
    key,
    prunedBelow,
    onProgress: opts.onProgress,
  });
  if (!report.ok) return report;
  const { rows: loose } = await q.query<{ event_id: string }>(
    `SELECT e.event_id FROM trellis.audit_events e
      WHERE NOT EXISTS (SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = e.seq)
      ORDER BY e.seq LIMIT 1`,
  );
  // An erased event must name an erasure that is itself in the log.
  const { rows: unlogged } = await q.query<{ event_id: string }>(
    `SELECT e.event_id FROM trellis.audit_events e
      WHERE e.erased_by IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM trellis.audit_events x JOIN trellis.audit_leaves l ON l.event_seq = x.seq
         WHERE x.seq = e.erased_by AND x.action = 'audit.erase')
      ORDER BY e.seq LIMIT 1`,
  );
  if (unlogged[0])
    return {
      ...report,
      ok: false,
      problem: {
        kind: "erasure_unlogged",
        event_id: unlogged[0].event_id,
        message: `event ${unlogged[0].event_id} was erased, but no erasure in the log says so (its personal part was removed behind the log's back)`,
      },
    };
  if (loose[0])
    return {
      ...report,
      ok: false,
      problem: {
        kind: "not_in_log",
        event_id: loose[0].event_id,
        message: `event ${loose[0].event_id} is in the database but not in the log (inserted behind the log's back, or written in the last second: run again with the server stopped)`,
      },
    };
  return report;
}

/** The database's leaves with their events, in index order, read a few pages ahead. */
export async function* dbLeaves(
  q: Queryable,
  start: number,
  end: number,
  personalFrom: number,
): AsyncGenerator<LeafRecord[]> {
  type Leaf = { leaf_index: number; event_seq: number; leaf_hash: string };
  type Row = { leaf: Leaf; event: EventRow | undefined };
  // Subject keys, read once per subject for the run (a verify meets few subjects per page).
  const keys = new Map<string, Uint8Array | null>();
  /**
   * One page: its leaves by index, then their events by seq range (leaf order is commit order,
   * so a page's seqs are close together), then the keys of subjects not met yet. Two range
   * scans cost the database about a third of joining leaves to events row by row.
   */
  const page = async (from: number): Promise<Row[]> => {
    const { rows: leaves } = await q.query<Leaf>(
      `SELECT leaf_index, event_seq, encode(hash, 'base64') AS leaf_hash FROM trellis.audit_leaves
        WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index`,
      [from, Math.min(end, from + PAGE)],
    );
    if (leaves.length === 0) return [];
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const l of leaves) {
      const s = Number(l.event_seq);
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    // Leaves of the first form hash every stored column; the others only need the parts.
    const cols = from < personalFrom ? `${EVENT_COLUMNS_STORED}, ${HASHED_PARTS}` : HASHED_COLUMNS;
    const { rows: events } =
      hi - lo < 4 * leaves.length
        ? await q.query<EventRow>(
            `SELECT ${cols} FROM trellis.audit_events e WHERE e.seq >= $1 AND e.seq <= $2 ORDER BY e.seq`,
            [lo, hi],
          )
        : await q.query<EventRow>(
            `SELECT ${cols} FROM trellis.audit_events e WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq`,
            [leaves.map((l) => l.event_seq)],
          );
    const unknown = new Set<string>();
    for (const e of events)
      if (typeof e.actor_id === "string" && !keys.has(e.actor_id)) unknown.add(e.actor_id);
    if (unknown.size > 0) {
      const { rows: found } = await q.query<{ subject: string; key: Uint8Array }>(
        "SELECT subject, key FROM trellis.audit_subject_keys WHERE subject = ANY($1::text[])",
        [[...unknown]],
      );
      if (keys.size + unknown.size > 100_000) keys.clear();
      for (const a of unknown) keys.set(a, null);
      for (const k of found) keys.set(k.subject, k.key);
    }
    for (const e of events)
      if (typeof e.actor_id === "string") e.subject_key = keys.get(e.actor_id) ?? null;
    // Leaf order is nearly seq order: walk both in step, and look up by seq only the few leaves
    // that came late (a transaction that committed after later ones).
    let bySeq: Map<number, EventRow> | undefined;
    let j = 0;
    return leaves.map((leaf) => {
      const s = Number(leaf.event_seq);
      while (j < events.length && Number((events[j] as EventRow).seq) < s) j += 1;
      const e = events[j];
      if (e !== undefined && Number(e.seq) === s) return { leaf, event: e };
      bySeq ??= new Map(events.map((x) => [Number(x.seq), x]));
      return { leaf, event: bySeq.get(s) };
    });
  };
  // The database reads the next pages (on other pool connections) while this process hashes
  // the current one: reading, not hashing, is the slower half.
  const AHEAD = 3;
  const queue: Array<Promise<Row[]>> = [];
  let nextFrom = start;
  const refill = () => {
    while (queue.length < AHEAD && nextFrom < end) {
      const p = page(nextFrom);
      p.catch(() => {}); // awaited in turn; an early return must not leave it unhandled
      queue.push(p);
      nextFrom += PAGE;
    }
  };
  for (let from = start; from < end; from += PAGE) {
    refill();
    const rows = await (queue.shift() as Promise<Row[]>);
    refill();
    const out: LeafRecord[] = new Array(rows.length);
    for (let j = 0; j < rows.length; j++) {
      const { leaf, event } = rows[j] as Row;
      const r: LeafRecord = {
        leaf_index: Number(leaf.leaf_index),
        leaf_hash: leaf.leaf_hash,
        canonical: null,
        event_id: event?.event_id,
        event_seq: Number(leaf.event_seq),
      };
      out[j] = r;
      if (!event) continue;
      try {
        r.canonical = hashedEvent(event, r.leaf_index < personalFrom, false).canonical;
      } catch (err) {
        if (!(err instanceof SubjectKeyMissing)) throw err;
        r.canonical = "";
        r.unbuildable = err.message;
      }
    }
    yield out;
  }
}
