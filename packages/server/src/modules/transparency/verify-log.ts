import { verifyCheckpoint } from "@trellis/sdk/verify";
import type { Queryable } from "../../db/db";
import {
  canonicalLeafHash,
  EVENT_COLUMNS,
  type EventRow,
  hashedEvent,
  SUBJECT_KEY_JOIN,
  SubjectKeyMissing,
} from "./log";
import { type Hash, nodeHash } from "./merkle";
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
    | "tree_size";
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
  private readonly stack: Array<{ size: number; hash: Hash }> = [];
  size = 0;
  append(h: Hash) {
    let node = { size: 1, hash: h };
    let top = this.stack.at(-1);
    while (top && top.size === node.size) {
      this.stack.pop();
      node = { size: node.size * 2, hash: nodeHash(top.hash, node.hash) };
      top = this.stack.at(-1);
    }
    this.stack.push(node);
    this.size += 1;
  }
  /** MTH of the leaves so far (RFC 9162: the right-most subtrees fold first). */
  root(): Hash | undefined {
    let acc: Hash | undefined;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const s = this.stack[i] as { hash: Hash };
      acc = acc ? nodeHash(s.hash, acc) : s.hash;
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
  leaf_hash: Uint8Array;
  canonical: string | null;
  event_id?: string;
  /** The event's seq, for messages about a missing event. */
  event_seq?: number;
  /** The event is there but its hashed form cannot be rebuilt (e.g. its subject key is gone). */
  unbuildable?: string;
}

/**
 * The verification itself, over any source of leaves in index order (the database, or an export
 * file): each event rehashed against its leaf, the tree rebuilt, every checkpoint's signature
 * and root checked at its size. Missing events are accepted only below `prunedBelow`.
 */
export async function verifyLeaves(
  leaves: AsyncIterable<LeafRecord>,
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
      if (!Buffer.from(signedRoot).equals(Buffer.from(range.root() as Hash)))
        return {
          kind: "checkpoint_root",
          message: `checkpoint ${cp.size} signs another root than the events give (a changed leaf before it, or a forked checkpoint)`,
        };
      report.checkpoints += 1;
      next += 1;
    }
    return undefined;
  };
  let i = 0;
  for await (const r of leaves) {
    if (i >= o.size) break;
    if (Number(r.leaf_index) !== i)
      return fail({ kind: "leaf_missing", leaf_index: i, message: `leaf ${i} is missing` });
    if (r.unbuildable !== undefined)
      return fail({
        kind: "event_changed",
        leaf_index: i,
        event_id: r.event_id,
        message: `event ${r.event_id} (leaf ${i}): ${r.unbuildable}`,
      });
    if (r.canonical === null) {
      if (i >= o.prunedBelow)
        return fail({
          kind: "event_missing",
          leaf_index: i,
          message: `leaf ${i}${r.event_seq !== undefined ? ` is event seq ${r.event_seq}, which` : "'s event"} is no longer there (deleted)`,
        });
      range.append(new Uint8Array(r.leaf_hash)); // pruned by retention: the hash stands for it
      report.pruned += 1;
    } else {
      const h = canonicalLeafHash(r.canonical);
      if (!Buffer.from(r.leaf_hash).equals(Buffer.from(h)))
        return fail({
          kind: "event_changed",
          leaf_index: i,
          event_id: r.event_id,
          message: `event ${r.event_id} (leaf ${i}) differs from what was logged: the event or its stored hash was changed`,
        });
      range.append(h);
      report.events += 1;
    }
    const bad = checkpointsHere();
    if (bad) return fail(bad);
    i += 1;
    if (i % PAGE === 0 || i === o.size) o.onProgress?.(i, o.size);
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

export async function verifyLog(
  q: Queryable,
  opts: { verifierKey?: string; onProgress?: (done: number, total: number) => void } = {},
): Promise<VerifyReport> {
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
  const report = await verifyLeaves(dbLeaves(q, size, personalFrom), {
    size,
    checkpoints: cps.map((c) => ({ size: Number(c.tree_size), note: c.note })),
    key,
    prunedBelow: Number(pr[0]?.below ?? 0),
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
async function* dbLeaves(
  q: Queryable,
  size: number,
  personalFrom: number,
): AsyncGenerator<LeafRecord> {
  type Row = EventRow & {
    leaf_index: number;
    event_seq: number;
    found: boolean;
    leaf_hash: Uint8Array;
  };
  const page = async (from: number): Promise<Row[]> =>
    (
      await q.query<Row>(
        `SELECT l.leaf_index, l.event_seq, l.hash AS leaf_hash, e.seq IS NOT NULL AS found, ${EVENT_COLUMNS}
           FROM trellis.audit_leaves l LEFT JOIN trellis.audit_events e ON e.seq = l.event_seq
                ${SUBJECT_KEY_JOIN}
          WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index`,
        [from, Math.min(size, from + PAGE)],
      )
    ).rows;
  // The database reads the next pages (on other pool connections) while this process hashes
  // the current one: reading, not hashing, is the slower half.
  const AHEAD = 3;
  const queue: Array<Promise<Row[]>> = [];
  let nextFrom = 0;
  const refill = () => {
    while (queue.length < AHEAD && nextFrom < size) {
      const p = page(nextFrom);
      p.catch(() => {}); // awaited in turn; an early return must not leave it unhandled
      queue.push(p);
      nextFrom += PAGE;
    }
  };
  for (let from = 0; from < size; from += PAGE) {
    refill();
    const rows = await (queue.shift() as Promise<Row[]>);
    refill();
    for (const r of rows) {
      const { leaf_index, event_seq, found, leaf_hash, ...event } = r;
      const base = {
        leaf_index: Number(leaf_index),
        leaf_hash: new Uint8Array(leaf_hash),
        event_id: event.event_id,
        event_seq: Number(event_seq),
      };
      if (!found) {
        yield { ...base, canonical: null };
        continue;
      }
      try {
        yield {
          ...base,
          canonical: hashedEvent(event as EventRow, Number(leaf_index) < personalFrom).canonical,
        };
      } catch (err) {
        if (!(err instanceof SubjectKeyMissing)) throw err;
        yield { ...base, canonical: "", unbuildable: err.message };
      }
    }
  }
}
