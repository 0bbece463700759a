import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
import { erasureDigest, verifierKeyFor, verifyStatement } from "./note";

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

export interface VerifyReport {
  ok: boolean;
  tree_size: number;
  events: number;
  checkpoints: number;
  /** Leaves whose events were pruned by retention (their hashes stand for them). */
  pruned: number;
  /** Anchor files compared with the database's checkpoints (database verify only). */
  anchors?: number;
  problem?: VerifyProblem;
}

const PAGE = 10_000;

/** A compact range [0, n): the roots of the perfect subtrees, left to right. */
class CompactRange {
  private readonly stack: Array<{ size: number; hash: string }> = [];
  size = 0;
  /** Told every interior node as it completes: level ≥ 1, index at that level, base64 hash. */
  onNode?: (level: number, idx: number, hash: string) => void;
  /** Appends a leaf hash (base64). */
  append(h: string) {
    let size = 1;
    let level = 0;
    let hash = h;
    let top = this.stack.at(-1);
    while (top && top.size === size) {
      this.stack.pop();
      hash = nodeHashB64(top.hash, hash);
      size *= 2;
      level += 1;
      this.onNode?.(level, Math.floor(this.size / size), hash);
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
 * The interior nodes (level ≥ 1) that complete when leaves [from, to) are appended, as index
 * ranges per level: node (L, i) completes with leaf (i + 1)·2^L − 1.
 */
export function nodesCompletedIn(from: number, to: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let level = 1, w = 2; w <= to; level++, w *= 2) {
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
 * One `audit.prune` event at leaf `leafIndex`: its statement must be signed by the log's key and
 * say what the event says, and a prune reaches only below itself. Returns the leaf below which
 * its rows may be missing, or the problem. (Only the server holds the key: a prune mark written
 * with database access alone, to delete recent events "legally", fails here.)
 */
export function checkPrune(
  event: { event_id?: unknown; diff?: unknown },
  leafIndex: number,
  key: string,
): { below: number } | { problem: VerifyProblem } {
  const diff = (event.diff ?? {}) as { below_leaf?: unknown; statement?: unknown };
  const forged = (why: string): { problem: VerifyProblem } => ({
    problem: {
      kind: "prune_forged",
      leaf_index: leafIndex,
      event_id: String(event.event_id),
      message: `the audit.prune event ${event.event_id} (leaf ${leafIndex}) is not the server's own: ${why}. The events it says were pruned (below leaf ${diff.below_leaf}) were deleted behind the log's back`,
    },
  });
  let fields: Record<string, string>;
  try {
    fields = verifyStatement(diff.statement, key, "audit.prune");
  } catch (err) {
    return forged((err as Error).message);
  }
  const below = Number(fields.below_leaf);
  if (!Number.isSafeInteger(below) || below < 0 || below !== diff.below_leaf)
    return forged(`it says below_leaf ${diff.below_leaf}, its statement ${fields.below_leaf}`);
  if (below > leafIndex) return forged(`it reaches past itself (below leaf ${below})`);
  if (fields.event !== String(event.event_id))
    return forged(`its statement was signed for another event (${fields.event}): a copy`);
  return { below };
}

/**
 * The stored interior nodes completed in leaves [from, to) against the ones the walk computed
 * (`made`, base64, in the order they completed, which `digest` already hashed): one compare per
 * page, and on a difference the first node that differs, named.
 */
async function checkStoredNodes(
  stored: StoredNodes,
  made: string[],
  digest: string,
  from: number,
  to: number,
): Promise<VerifyProblem | undefined> {
  // Every stored hash 32 bytes, as many as made, the same digest: then each is the one made
  // (without the length check, bytes moved from one node to its neighbour keep the digest).
  if (made.length === stored.count && stored.whole && digest === stored.digest) return undefined;
  const have = await stored.read();
  // The order they completed in: leaf by leaf, lower levels first (as CompactRange makes them).
  let k = 0;
  for (let n = from; n < to; n++)
    for (let level = 1, w = 2; (n + 1) % w === 0; level++, w *= 2) {
      const idx = (n + 1) / w - 1;
      const got = have.get(`${level}/${idx}`);
      if (got !== made[k++])
        return {
          kind: "node_changed",
          message: `the stored tree node ${level}/${idx} (leaves ${idx * w}..${(idx + 1) * w - 1}) ${got === undefined ? "is missing" : "differs from the hash of its leaves"}: the server would serve roots and proofs that do not verify`,
        };
    }
  return {
    kind: "node_changed",
    message: `the stored tree holds nodes for leaves ${from}..${to - 1} that no leaves make (rows were added)`,
  };
}

/**
 * The verification itself, over any source of leaves in index order, a page at a time (the
 * database, or an export file): each event rehashed against its leaf, the tree rebuilt, every
 * checkpoint's signature and root checked at its size. Missing events are accepted only below
 * `prunedBelow`.
 */
export async function verifyLeaves(
  leaves: AsyncIterable<LeafPage>,
  o: {
    size: number;
    /** `root` (base64): the stored root column, when the source has one. */
    checkpoints: Array<{ size: number; note: string; root?: string }>;
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
      const cp = o.checkpoints[next] as { size: number; note: string; root?: string };
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
      // The stored root column is what the server checks new checkpoints against.
      if (cp.root !== undefined && cp.root !== range.root())
        return {
          kind: "checkpoint_root",
          message: `checkpoint ${cp.size}'s stored root differs from the root it signs (the row was changed; the server will refuse to sign on it)`,
        };
      report.checkpoints += 1;
      next += 1;
    }
    return undefined;
  };
  // Pages, not single leaves, cross the async boundary: a promise per leaf was a tenth of the
  // verifier's time.
  // Nodes completed in the current page, in the order they completed, and their digest so far.
  let made: string[] = [];
  let nodeDigest = createHash("sha256");
  range.onNode = (_level, _idx, hash) => {
    nodeDigest.update(hash, "base64");
    made.push(hash);
  };
  pages: for await (const page of leaves) {
    // A source gives no empty page while leaves are due: one means they are not there (a tree
    // size raised by hand would otherwise be walked page by page for ever).
    if (page.length === 0 && i < o.size)
      return fail({ kind: "leaf_missing", leaf_index: i, message: `leaf ${i} is missing` });
    made = [];
    nodeDigest = createHash("sha256");
    const pageFrom = i;
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
    if (page.stored) {
      const digest = nodeDigest.digest("base64");
      const bad = await checkStoredNodes(page.stored, made, digest, pageFrom, i);
      if (bad) return fail(bad);
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
  /**
   * The anchor folder's checkpoints (see {@link readAnchors}): each must be the database's
   * checkpoint of its size, byte for byte. They live outside the database, so they catch what
   * the database alone could rewrite consistently: a replaced key and re-signed checkpoints,
   * or a log put back behind what was published.
   */
  anchors?: Array<{ size: number; note: string; file: string }>;
  onProgress?: (done: number, total: number) => void;
}

export async function verifyLog(q: Queryable, opts: VerifyOptions = {}): Promise<VerifyReport> {
  // Checkpoints before the state: a checkpoint commits with the tree size it signs, so every
  // one read first is within the size read next, even while a server (on PostgreSQL) keeps
  // integrating; one beyond it means leaves were removed.
  const { rows: cps } = await q.query<{ tree_size: number; note: string; root: string }>(
    "SELECT tree_size, note, encode(root, 'base64') AS root FROM trellis.audit_checkpoints ORDER BY tree_size",
  );
  const { rows: st } = await q.query<{ tree_size: number; personal_from: number }>(
    "SELECT tree_size, personal_from FROM trellis.audit_log_state",
  );
  const size = Number(st[0]?.tree_size ?? 0);
  const personalFrom = Number(st[0]?.personal_from ?? 0);
  const { rows: keyRows } = await q.query<{ origin: string; public_key: Uint8Array }>(
    "SELECT origin, public_key FROM trellis.audit_log_keys ORDER BY created_at LIMIT 1",
  );
  const key =
    opts.verifierKey ??
    (keyRows[0] ? verifierKeyFor(keyRows[0].origin, new Uint8Array(keyRows[0].public_key)) : "");
  const checkpoints = cps.map((c) => ({ size: Number(c.tree_size), note: c.note, root: c.root }));
  // Rows the log itself says were pruned (retention): below the highest mark of a signed
  // `audit.prune` in the tree (the walk then checks that event's row against its leaf).
  const marks = await pruneMarks(q, key, size);
  const fresh = { ok: true, tree_size: size, events: 0, checkpoints: 0, pruned: 0 };
  const bySize = new Map(checkpoints.map((c) => [c.size, c.note]));
  for (const a of opts.anchors ?? []) {
    const note = bySize.get(a.size);
    if (note === a.note) continue;
    return failed(fresh, {
      kind: "anchor_mismatch",
      message:
        note === undefined
          ? `the anchor ${a.file} holds checkpoint ${a.size}, which the database does not (${a.size > size ? `the tree has ${size} leaves: restored from an older backup, or leaves removed` : "checkpoints removed"})`
          : `the anchor ${a.file} holds another checkpoint of size ${a.size} than the database (the log forked, or its checkpoints were re-signed with another key)`,
    });
  }
  if (marks.forged) return failed(fresh, marks.forged);
  const report = await verifyLeaves(dbLeaves(q, 0, size, personalFrom), {
    size,
    checkpoints,
    key,
    prunedBelow: marks.below,
    onProgress: opts.onProgress,
  });
  if (opts.anchors) report.anchors = opts.anchors.length;
  if (!report.ok) return report;
  // Stored nodes past the tree (not complete at this size): nothing is built from them yet, but
  // the sequencer's next insert there would fail and integration would stop. One index probe a
  // level: node (L, i) is complete only while i < size >> L.
  const { rows: ahead } = await q.query<{ level: number; idx: number }>(
    `SELECT r.level, t.idx FROM generate_series(1, 62) AS r(level)
       CROSS JOIN LATERAL (SELECT t.idx FROM trellis.audit_tree t
                            WHERE t.level = r.level AND t.idx >= ($1::bigint >> r.level)
                            ORDER BY t.idx LIMIT 1) t
      LIMIT 1`,
    [size],
  );
  if (ahead[0])
    return failed(report, {
      kind: "node_changed",
      message: `the stored tree holds node ${ahead[0].level}/${Number(ahead[0].idx)}, which the tree (${size} leaves) has not completed: rows were added (the sequencer would stop there)`,
    });
  const { rows: loose } = await q.query<{ event_id: string }>(
    `SELECT e.event_id FROM trellis.audit_events e
      WHERE NOT EXISTS (SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = e.seq)
      ORDER BY e.seq LIMIT 1`,
  );
  // An erased event must name an erasure that is itself in the log.
  const { rows: unlogged } = await q.query<{ event_id: string }>(
    // Erased means all of: the commitment kept (a leaf of the second form then hashes it in place
    // of the actor, whatever actor_id says), no actor, and a logged erasure named. The trigger
    // says so too, but the owner can switch triggers off.
    `SELECT e.event_id FROM trellis.audit_events e
      WHERE (e.erased_by IS NOT NULL OR e.erased_commitment IS NOT NULL)
        AND (e.erased_by IS NULL OR e.erased_commitment IS NULL OR e.actor_id IS NOT NULL
             OR NOT EXISTS (
               SELECT 1 FROM trellis.audit_events x JOIN trellis.audit_leaves l ON l.event_seq = x.seq
                WHERE x.seq = e.erased_by AND x.action = 'audit.erase'))
      ORDER BY e.seq LIMIT 1`,
  );
  // Each erasure in the log: signed by the log's key, for exactly the rows that name it.
  const { rows: erasures } = await q.query<{
    event_id: string;
    statement: unknown;
    outcome: string;
    erased: string[];
  }>(
    `SELECT x.event_id, x.diff->'statement' AS statement, x.outcome,
            coalesce(array_agg(e.event_id ORDER BY e.seq) FILTER (WHERE e.seq IS NOT NULL), '{}') AS erased
       FROM trellis.audit_events x JOIN trellis.audit_leaves l ON l.event_seq = x.seq
       LEFT JOIN trellis.audit_events e ON e.erased_by = x.seq
      WHERE x.action = 'audit.erase'
      GROUP BY x.seq, x.event_id, x.diff, x.outcome ORDER BY x.seq`,
  );
  for (const x of erasures) {
    // A refused erasure request is logged as audit.erase too; it erased nothing.
    if (x.outcome !== "allowed" && x.erased.length === 0) continue;
    let why: string | undefined;
    try {
      const f = verifyStatement(x.statement, key, "audit.erase");
      if (f.event !== x.event_id) why = `its statement was signed for another event (${f.event})`;
      else if (Number(f.erased) !== x.erased.length || f.events !== erasureDigest(x.erased))
        why = `it signs ${f.erased} erased events, and ${x.erased.length} name it (or other ones)`;
    } catch (err) {
      why = (err as Error).message;
    }
    if (why)
      return failed(report, {
        kind: "erasure_forged",
        event_id: x.event_id,
        message: `the audit.erase event ${x.event_id} is not the server's own erasure of the events that name it: ${why} (personal data was removed behind the log's back)`,
      });
  }
  if (unlogged[0])
    return failed(report, {
      kind: "erasure_unlogged",
      event_id: unlogged[0].event_id,
      message: `event ${unlogged[0].event_id} was erased (its actor and personal part replaced by their commitment), but no erasure in the log says so: removed behind the log's back (or by an erasure of the last second, not in the log yet: run again)`,
    });
  if (loose[0])
    return failed(report, {
      kind: "not_in_log",
      event_id: loose[0].event_id,
      message: `event ${loose[0].event_id} is in the database but not in the log (inserted behind the log's back, or written in the last second: run again with the server stopped)`,
    });
  return report;
}

const failed = (report: VerifyReport, problem: VerifyProblem): VerifyReport => ({
  ...report,
  ok: false,
  problem,
});

/**
 * The retention marks in the log: the highest `below_leaf` of the `audit.prune` events in the
 * tree (below `size`) that the key signed, and the first one it did not sign, if any. `audit
 * verify` fails on that one; the server's own prune starts from the signed mark either way.
 */
export async function pruneMarks(
  q: Queryable,
  key: string,
  size = Number.MAX_SAFE_INTEGER,
): Promise<{ below: number; forged?: VerifyProblem }> {
  const { rows } = await q.query<{ event_id: string; diff: unknown; leaf_index: number }>(
    `SELECT e.event_id, e.diff, l.leaf_index FROM trellis.audit_events e
       JOIN trellis.audit_leaves l ON l.event_seq = e.seq
      WHERE e.action = 'audit.prune' AND e.outcome = 'allowed' AND l.leaf_index < $1
      ORDER BY l.leaf_index`,
    [size],
  );
  let below = 0;
  let forged: VerifyProblem | undefined;
  for (const p of rows) {
    const c = checkPrune(p, Number(p.leaf_index), key);
    if ("problem" in c) forged ??= c.problem;
    else below = Math.max(below, c.below);
  }
  return { below, forged };
}

/** An anchor folder's checkpoint files, oldest first (names sort by size); none if it is absent. */
export function anchorNames(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names.filter((n) => /^checkpoint-\d{16}$/.test(n)).sort();
}

/** The checkpoints of an anchor folder (`checkpoint-<size, 16 digits>` files); none if it is absent. */
export function readAnchors(dir: string): Array<{ size: number; note: string; file: string }> {
  return anchorNames(dir).map((n) => ({
    size: Number(n.slice("checkpoint-".length)),
    note: readFileSync(join(dir, n), "utf8"),
    file: join(dir, n),
  }));
}

/** The database's leaves with their events, in index order, read a few pages ahead. */
export async function* dbLeaves(
  q: Queryable,
  start: number,
  end: number,
  personalFrom: number,
): AsyncGenerator<LeafPage> {
  type Leaf = { leaf_index: number; event_seq: number; leaf_hash: string };
  type Row = { leaf: Leaf; event: EventRow | undefined };
  // Subject keys, read once per subject for the run (a verify meets few subjects per page).
  const keys = new Map<string, Uint8Array | null>();
  /**
   * One page: its leaves by index, then their events by seq range (leaf order is commit order,
   * so a page's seqs are close together), then the keys of subjects not met yet. Two range
   * scans cost the database about a third of joining leaves to events row by row.
   */
  /** What the stored tree holds for the nodes completed in [from, to): see StoredNodes. */
  const storedNodes = async (from: number, to: number): Promise<StoredNodes> => {
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
  };
  const page = async (from: number): Promise<{ rows: Row[]; stored: StoredNodes }> => {
    const to = Math.min(end, from + PAGE);
    const [rows, stored] = await Promise.all([leafRows(from, to), storedNodes(from, to)]);
    return { rows, stored };
  };
  const leafRows = async (from: number, to: number): Promise<Row[]> => {
    const { rows: leaves } = await q.query<Leaf>(
      `SELECT leaf_index, event_seq, encode(hash, 'base64') AS leaf_hash FROM trellis.audit_leaves
        WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index`,
      [from, to],
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
  const queue: Array<Promise<{ rows: Row[]; stored: StoredNodes }>> = [];
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
    const { rows, stored } = await (queue.shift() as Promise<{ rows: Row[]; stored: StoredNodes }>);
    refill();
    const out: LeafPage = new Array(rows.length);
    out.stored = stored;
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
