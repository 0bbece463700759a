import type { Queryable } from "../../db/db";
import {
  canonicalLeafHashB64,
  EVENT_COLUMNS_STORED,
  type EventRow,
  eventLeafHashB64,
  HASHED_COLUMNS,
  type HashedTuple,
  hashedRow,
  SubjectKeyMissing,
} from "./log";
import { STORED_FROM_LEVEL } from "./merkle";

/**
 * `audit verify`'s per-page work, apart from the tree: reading a page of leaves with their
 * events, and checking each leaf's event against its stored hash. Nothing here imports the SDK
 * or the tree walk, so a worker thread (verify-worker.ts) runs the same code on its own
 * connection while the main thread builds the tree.
 */

/** Leaves per page: what one query reads and one message carries. */
export const PAGE = 10_000;

export interface VerifyProblem {
  kind:
    | "leaf_missing"
    | "event_missing"
    | "event_changed"
    | "checkpoint_signature"
    | "checkpoint_root"
    | "not_in_log"
    | "erasure_unlogged"
    /** An `audit.prune` or `audit.erase` event the log's key did not sign (or signed otherwise). */
    | "prune_forged"
    | "erasure_forged"
    | "tree_size"
    /** The anchor folder (outside the database) holds a checkpoint the database lacks or has otherwise. */
    | "anchor_mismatch"
    /** A stored interior node of the tree (what roots and proofs are built from) is not its leaves'. */
    | "node_changed"
    /** An export's leaves past its newest signed checkpoint: nothing vouches for them. */
    | "unsigned";
  message: string;
  event_id?: string;
  leaf_index?: number;
}

/**
 * One leaf as a verifier sees it: its stored hash and the event as its leaf hashes it
 * (canonical JSON; null when pruned or gone), or why that form cannot be made.
 */
export interface LeafRecord {
  leaf_index: number;
  /** base64. */
  leaf_hash: string;
  /**
   * The event's canonical JSON (an export file's); null when pruned or gone, or when `rehash`
   * stands for it.
   */
  canonical: string | null;
  /**
   * The event's leaf hash, recomputed as it was read (base64): the database's pages hash each
   * event as they read it and keep no text.
   */
  rehash?: string;
  event_id?: string;
  /** The event's seq, for messages about a missing event. */
  event_seq?: number;
  /** The event is there but its hashed form cannot be rebuilt (e.g. its subject key is gone). */
  unbuildable?: string;
}

/**
 * A page of leaves in index order. From the database it also carries what the stored tree holds
 * for the interior nodes that complete within the page (see {@link nodesCompletedIn}), so the
 * verifier checks the nodes the server builds roots and proofs from, not only the leaves.
 */
export type LeafPage = LeafRecord[] & { stored?: StoredNodes };

export interface StoredNodes {
  /**
   * base64 SHA-256 of the stored hashes in the order the nodes complete (by the leaf that
   * completes them, (idx + 1)·2^level, then level), and how many there are.
   */
  digest: string;
  count: number;
  /** Every one of them is 32 bytes. */
  whole: boolean;
  /** Reads them one by one, to name the first that differs. */
  read(): Promise<Map<string, string>>;
}

/**
 * The stored interior nodes (level ≥ STORED_FROM_LEVEL) that complete when leaves [from, to)
 * are appended, as index ranges per level: node (L, i) completes with leaf (i + 1)·2^L − 1.
 */
export function nodesCompletedIn(from: number, to: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let level = STORED_FROM_LEVEL, w = 2 ** level; w <= to; level++, w *= 2) {
    const lo = Math.ceil((from + 1) / w) - 1;
    const hi = Math.floor(to / w) - 1;
    if (hi >= lo) out.push([level, lo, hi]);
  }
  return out;
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
  if (r.canonical === null && r.rehash === undefined) {
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
  const h = r.rehash ?? canonicalLeafHashB64(r.canonical as string);
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
 * A page of leaves after their own checks (see {@link checkPage}): the hash the tree takes for
 * each leaf, up to the first problem. What crosses from a worker thread: one buffer of hashes
 * (moved, not copied) and a few numbers, not the events.
 */
export interface CheckedPage {
  /** Index of the page's first leaf. */
  from: number;
  /** Leaves the source gave (0: none were there). */
  leaves: number;
  /** Leaves checked before `problem` (all of them when there is none). */
  checked: number;
  /**
   * 32 bytes per checked leaf, in order: the event's recomputed hash, or a pruned leaf's own.
   * A whole buffer (offset 0), so a worker can transfer it.
   */
  hashes: Uint8Array;
  /** Offsets in the page of the leaves whose events were pruned (their stored hash stands). */
  pruned: number[];
  /** The page's first problem, at leaf `from + checked`. */
  problem?: VerifyProblem;
  stored?: StoredNodes;
}

/**
 * Each leaf of a page checked on its own: in its place (leaf `from + j`), its event rehashed
 * against its stored hash (see {@link checkLeaf}). Stops at the first problem.
 */
export function checkPage(page: LeafRecord[], from: number, prunedBelow: number): CheckedPage {
  const hashes = Buffer.alloc(32 * page.length);
  const out: CheckedPage = { from, leaves: page.length, checked: 0, hashes, pruned: [] };
  for (let j = 0; j < page.length; j++) {
    const r = page[j] as LeafRecord;
    const i = from + j;
    if (Number(r.leaf_index) !== i) {
      const found = Number(r.leaf_index);
      // What comes instead says more than "missing": a repeat or a leaf out of its place.
      const instead =
        found < i
          ? `leaf ${found} again (a duplicate or leaves out of order)`
          : `leaf ${found} (leaves removed or out of order)`;
      out.problem = {
        kind: "leaf_missing",
        leaf_index: i,
        message: `leaf ${i} is missing: found ${instead} where it should be`,
      };
      return out;
    }
    const c = checkLeaf(r, i, prunedBelow);
    if ("problem" in c) {
      out.problem = c.problem;
      return out;
    }
    // A recomputed hash is 32 bytes; a pruned leaf's stored one must be too (44 base64 chars
    // that decode to fewer would leave the slot's last bytes zero, a hash no leaf has).
    if (c.hash.length !== 44 || hashes.write(c.hash, 32 * j, 32, "base64") !== 32) {
      out.problem = {
        kind: "event_changed",
        leaf_index: i,
        event_id: r.event_id,
        message: `leaf ${i}'s stored hash is not a SHA-256 hash (32 bytes): it was changed`,
      };
      return out;
    }
    if (c.pruned) out.pruned.push(j);
    out.checked = j + 1;
  }
  return out;
}

/** What the stored tree holds for the nodes completed in [from, to): see StoredNodes. */
export async function storedNodes(q: Queryable, from: number, to: number): Promise<StoredNodes> {
  const ranges = nodesCompletedIn(from, to);
  const args = [ranges.map((r) => r[0]), ranges.map((r) => r[1]), ranges.map((r) => r[2])];
  // One index range per level. OFFSET 0 keeps each a parameterized scan of the primary key:
  // as a plain join, PostgreSQL hashes the whole audit_tree for every page (250 ms at 1M
  // leaves against 15 ms).
  const join = `FROM unnest($1::smallint[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi)
     CROSS JOIN LATERAL (SELECT t.level, t.idx, t.hash FROM trellis.audit_tree t
                          WHERE t.level = r.level AND t.idx BETWEEN r.lo AND r.hi OFFSET 0) t`;
  const { rows } = await q.query<{ digest: string; n: number; whole: boolean | null }>(
    `SELECT encode(sha256(coalesce(string_agg(t.hash, ''::bytea ORDER BY (t.idx + 1) << t.level, t.level), ''::bytea)), 'base64') AS digest,
            count(*)::int AS n, bool_and(octet_length(t.hash) = 32) AS whole ${join}`,
    args,
  );
  return {
    digest: rows[0]?.digest ?? "",
    count: Number(rows[0]?.n ?? 0),
    whole: rows[0]?.whole !== false,
    read: async () => {
      const { rows: all } = await q.query<{ level: number; idx: number; hash: string }>(
        `SELECT t.level, t.idx, encode(t.hash, 'base64') AS hash ${join}`,
        args,
      );
      return new Map(all.map((n) => [`${n.level}/${Number(n.idx)}`, n.hash]));
    },
  };
}

/**
 * Subject keys a reader has met, by subject (null: none stored), read once per subject for the
 * run: a verify meets few subjects per page.
 */
export type SubjectKeys = Map<string, Uint8Array | null>;

/**
 * Leaves [from, to) with their events as their leaves hash them: the leaves by index, then their
 * events by seq range (leaf order is commit order, so a page's seqs are close together), then
 * the keys of subjects not met yet. Two range scans cost the database about a third of joining
 * leaves to events row by row.
 */
export async function leafRecords(
  q: Queryable,
  keys: SubjectKeys,
  from: number,
  to: number,
  personalFrom: number,
): Promise<LeafRecord[]> {
  // Rows as tuples: named-key rows cost this loop more to build and to read (see hashedRow).
  type Leaf = [leaf_index: number, event_seq: number, leaf_hash: string];
  const leaves = await q.queryTuples<Leaf>(
    `SELECT leaf_index, event_seq, encode(hash, 'base64') AS leaf_hash FROM trellis.audit_leaves
      WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index`,
    [from, to],
  );
  if (leaves.length === 0) return [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const l of leaves) {
    const s = l[1];
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  }
  // No ORDER BY: the walk below takes events in any order, and sorting them made PostgreSQL
  // sort the selected rows (spilling to disk whenever it chose a bitmap scan: no statistics
  // yet, as on a fresh or never-analyzed table). They come in seq order all the same from an
  // index scan, and nearly so from a bitmap scan of this append-only table.
  const dense = hi - lo < 4 * leaves.length;
  const where = dense ? "e.seq >= $1 AND e.seq <= $2" : "e.seq = ANY($1::bigint[])";
  const args = dense ? [lo, hi] : [leaves.map((l) => l[1])];
  const events: EventRow[] =
    from < personalFrom // leaves of the first form hash the stored columns as they are
      ? (
          await q.query<EventRow>(
            `SELECT ${EVENT_COLUMNS_STORED} FROM trellis.audit_events e WHERE ${where}`,
            args,
          )
        ).rows
      : (
          await q.queryTuples<HashedTuple>(
            `SELECT ${HASHED_COLUMNS} FROM trellis.audit_events e WHERE ${where}`,
            args,
          )
        ).map(hashedRow);
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
  // Leaf order is nearly seq order, and so is the events': walk both in step, and look up by
  // seq only the few leaves that came late (a transaction that committed after later ones) or
  // events the scan gave out of order.
  let bySeq: Map<number, EventRow> | undefined;
  let j = 0;
  const out: LeafRecord[] = new Array(leaves.length);
  for (let k = 0; k < leaves.length; k++) {
    const leaf = leaves[k] as Leaf;
    const s = leaf[1];
    while (j < events.length && Number((events[j] as EventRow).seq) < s) j += 1;
    let event = events[j];
    if (event === undefined || Number(event.seq) !== s) {
      bySeq ??= new Map(events.map((x) => [Number(x.seq), x]));
      event = bySeq.get(s);
    }
    let rehash: string | undefined;
    let unbuildable: string | undefined;
    if (event)
      try {
        rehash = eventLeafHashB64(event, leaf[0] < personalFrom);
      } catch (err) {
        if (!(err instanceof SubjectKeyMissing)) throw err;
        unbuildable = err.message;
      }
    // Every record with all its fields, in one order: one shape for checkPage to read.
    out[k] = {
      leaf_index: leaf[0],
      leaf_hash: leaf[2],
      canonical: null,
      rehash,
      event_id: event?.event_id,
      event_seq: s,
      unbuildable,
    };
  }
  return out;
}
