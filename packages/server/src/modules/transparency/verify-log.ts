import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { verifyCheckpoint } from "@trellis/sdk/verify";
import type { Queryable } from "../../db/db";
import { nodeHashInto, STORED_FROM_LEVEL } from "./merkle";
import { erasureDigest, verifierKeyFor, verifyStatement } from "./note";
import {
  type CheckedPage,
  checkPage,
  type LeafPage,
  leafRecords,
  PAGE,
  type StoredNodes,
  type SubjectKeys,
  storedNodes,
  type VerifyProblem,
} from "./verify-pages";
import { VerifyPool } from "./verify-pool";

export {
  type CheckedPage,
  checkLeaf,
  type LeafPage,
  type LeafRecord,
  nodesCompletedIn,
  type StoredNodes,
  type VerifyProblem,
} from "./verify-pages";

/**
 * `trellis audit verify`: everything the log claims, recomputed from the events themselves.
 * Every leaf is rehashed from its event row (RFC 8785) and compared with the stored leaf; the
 * tree is rebuilt from those hashes (a compact range: one hash per set bit of the size) and every
 * stored checkpoint's signature is checked and its root compared with the rebuilt root at its
 * size, which also proves all checkpoints consistent with one another. Events that are in the
 * database but not in the tree are reported. Stops at the first problem and names it.
 */
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

/**
 * A compact range [0, n): the roots of the perfect subtrees, left to right, as 32-byte slots of
 * one buffer (at most 64 of them: one per bit of n).
 */
class CompactRange {
  private readonly slots = new Uint8Array(64 * 32);
  /** The subtree size of each slot in use. */
  private readonly sizes: number[] = [];
  size = 0;
  /**
   * Told every interior node as it completes (level ≥ 1, index at that level): its hash is in
   * `buf` at `at` until the next append.
   */
  onNode?: (level: number, idx: number, buf: Uint8Array, at: number) => void;
  /** Appends the leaf hash in `buf` at `at`. */
  append(buf: Uint8Array, at: number) {
    const { slots, sizes } = this;
    let top = sizes.length;
    for (let k = 0; k < 32; k++) slots[top * 32 + k] = buf[at + k] as number;
    let size = 1;
    let level = 0;
    // The new node sits in slot `top`; while the one below is as large, fold it into that one.
    while (top > 0 && sizes[top - 1] === size) {
      nodeHashInto(slots, (top - 1) * 32, slots, top * 32, slots, (top - 1) * 32);
      top -= 1;
      sizes.pop();
      size *= 2;
      level += 1;
      this.onNode?.(level, Math.floor(this.size / size), slots, top * 32);
    }
    sizes.push(size);
    this.size += 1;
  }
  /** MTH of the leaves so far, base64 (RFC 9162: the right-most subtrees fold first). */
  root(): string | undefined {
    const n = this.sizes.length;
    if (n === 0) return undefined;
    const acc = new Uint8Array(32);
    acc.set(this.slots.subarray((n - 1) * 32, n * 32));
    for (let i = n - 2; i >= 0; i--) nodeHashInto(this.slots, i * 32, acc, 0, acc, 0);
    return Buffer.from(acc).toString("base64");
  }
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
 * (`made`: 32 bytes each, in the order they completed): one digest compared per page, and on a
 * difference the first node that differs, named.
 */
async function checkStoredNodes(
  stored: StoredNodes,
  made: Uint8Array,
  from: number,
  to: number,
): Promise<VerifyProblem | undefined> {
  // Every stored hash 32 bytes, as many as made, the same digest: then each is the one made
  // (without the length check, bytes moved from one node to its neighbour keep the digest).
  const count = made.length / 32;
  const digest = createHash("sha256").update(made).digest("base64");
  if (count === stored.count && stored.whole && digest === stored.digest) return undefined;
  const have = await stored.read();
  // The order they completed in: leaf by leaf, lower levels first (as CompactRange makes them).
  let k = 0;
  for (let n = from; n < to; n++)
    for (let level = STORED_FROM_LEVEL, w = 2 ** level; (n + 1) % w === 0; level++, w *= 2) {
      const idx = (n + 1) / w - 1;
      const got = have.get(`${level}/${idx}`);
      const mine =
        k < count ? Buffer.from(made.subarray(32 * k, 32 * k + 32)).toString("base64") : undefined;
      k += 1;
      if (got !== mine)
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
  leaves: AsyncIterable<CheckedPage>,
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
  // Nodes completed in the current page, in the order they completed, hashed once per page. n
  // leaves complete at most n + 64 (n/2 + n/4 + … plus one per level the page starts inside).
  const room = (leaves: number) => 32 * (leaves + 64);
  let made = new Uint8Array(room(PAGE));
  let madeCount = 0;
  range.onNode = (level, _idx, buf, at) => {
    if (level < STORED_FROM_LEVEL) return; // not stored: rebuilt from the leaves checked here
    const o = 32 * madeCount++;
    for (let k = 0; k < 32; k++) made[o + k] = buf[at + k] as number;
  };
  for await (const page of leaves) {
    // A source gives no empty page while leaves are due: one means they are not there (a tree
    // size raised by hand would otherwise be walked page by page for ever).
    if (page.leaves === 0 && i < o.size)
      return fail({ kind: "leaf_missing", leaf_index: i, message: `leaf ${i} is missing` });
    madeCount = 0;
    if (made.length < room(page.leaves)) made = new Uint8Array(room(page.leaves));
    const pageFrom = i;
    // Leaves past the tree's size are not the log's (an export's extra lines): not walked.
    const take = Math.min(page.checked, o.size - i);
    /** Counts the page's first n leaves as events or pruned. */
    const count = (n: number) => {
      let pruned = 0;
      for (const k of page.pruned) if (k < n) pruned += 1;
      report.pruned += pruned;
      report.events += n - pruned;
    };
    for (let k = 0; k < take; k++) {
      range.append(page.hashes, 32 * k);
      i += 1;
      if (next < o.checkpoints.length) {
        const bad = checkpointsHere();
        if (bad) {
          count(k + 1);
          return fail(bad);
        }
      }
    }
    count(take);
    if (i % PAGE === 0 || i === o.size) o.onProgress?.(i, o.size);
    if (take < page.checked) break;
    if (page.problem) {
      if (i < o.size) return fail(page.problem);
      break;
    }
    if (page.stored) {
      const nodes = made.subarray(0, 32 * madeCount);
      const bad = await checkStoredNodes(page.stored, nodes, pageFrom, i);
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
  /**
   * Read and check pages in worker threads on their own connections (PostgreSQL only: `url`
   * names it), `count` of them, when the tree has at least `minLeaves` leaves (default 50 000:
   * below that starting them costs more than they save). The main thread then only builds the
   * tree; see docs/benchmarks.md.
   */
  workers?: { url: string; count: number; minLeaves?: number };
}

/**
 * The worker threads a verify of the PostgreSQL log at `url` uses: one per core, up to 4; none
 * on one core or on the embedded store (one process holds it, and its rows cannot be read from
 * another thread). Two on this project's 2-core machine measured 1.14x the events per second
 * of none (docs/benchmarks.md); more than the cores only took turns.
 */
export function verifyWorkers(url: string | undefined): VerifyOptions["workers"] {
  const cores = availableParallelism();
  return url && cores >= 2 ? { url, count: Math.min(cores, 4) } : undefined;
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
  const w = opts.workers;
  const pool =
    w && w.count > 0 && size >= (w.minLeaves ?? 50_000)
      ? new VerifyPool(w.count, { url: w.url, personalFrom, prunedBelow: marks.below })
      : undefined;
  let report: VerifyReport;
  try {
    report = await verifyLeaves(
      pool
        ? pooledLeaves(q, pool, size)
        : checkedPages(dbLeaves(q, 0, size, personalFrom), marks.below),
      { size, checkpoints, key, prunedBelow: marks.below, onProgress: opts.onProgress },
    );
  } finally {
    await pool?.close();
  }
  if (opts.anchors) report.anchors = opts.anchors.length;
  if (!report.ok) return report;
  // Stored nodes past the tree (not complete at this size): nothing is built from them yet, but
  // the sequencer's next insert there would fail and integration would stop. One index probe a
  // level: node (L, i) is complete only while i < size >> L. And none below the stored levels
  // (their CHECK refuses them; a row there means the constraint was dropped to plant it).
  const { rows: ahead } = await q.query<{ level: number; idx: number }>(
    `(SELECT t.level, t.idx FROM trellis.audit_tree t WHERE t.level < $2 ORDER BY t.level, t.idx LIMIT 1)
     UNION ALL
     (SELECT r.level, t.idx FROM generate_series($2::int, 62) AS r(level)
       CROSS JOIN LATERAL (SELECT t.idx FROM trellis.audit_tree t
                            WHERE t.level = r.level AND t.idx >= ($1::bigint >> r.level)
                            ORDER BY t.idx LIMIT 1) t
      LIMIT 1)
     LIMIT 1`,
    [size, STORED_FROM_LEVEL],
  );
  if (ahead[0])
    return failed(report, {
      kind: "node_changed",
      message:
        ahead[0].level < STORED_FROM_LEVEL
          ? `the stored tree holds node ${ahead[0].level}/${Number(ahead[0].idx)}, below the levels it keeps (${STORED_FROM_LEVEL} and up): rows were added`
          : `the stored tree holds node ${ahead[0].level}/${Number(ahead[0].idx)}, which the tree (${size} leaves) has not completed: rows were added (the sequencer would stop there)`,
    });
  // Every event row is some leaf's: the walk read report.events rows, one per leaf with its
  // event. A table holding more holds one that is in no leaf. Counting is an index-only scan
  // (40–70 ms at 1M rows); the anti-join that names the row reads both tables whole (0.4–0.55 s)
  // and runs only then. (Two leaves naming one row, which the unique event_seq forbids, would
  // make the counts meet over a loose row; but a second leaf of an event is a hash the tree did
  // not hold there, and the walk fails on it first, wherever a checkpoint signs it.)
  const { rows: counted } = await q.query<{ n: number | string }>(
    "SELECT count(*) AS n FROM trellis.audit_events",
  );
  const { rows: loose } =
    Number(counted[0]?.n ?? 0) > report.events
      ? await q.query<{ event_id: string }>(
          `SELECT e.event_id FROM trellis.audit_events e
            WHERE NOT EXISTS (SELECT 1 FROM trellis.audit_leaves l WHERE l.event_seq = e.seq)
            ORDER BY e.seq LIMIT 1`,
        )
      : { rows: [] };
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

/**
 * Pages fetched `ahead` at a time, yielded in order: the database reads the next pages (on other
 * connections) while this process works on the current one.
 */
async function* prefetched<T>(
  start: number,
  end: number,
  ahead: number,
  fetch: (from: number, to: number) => Promise<T>,
): AsyncGenerator<T> {
  const queue: Array<Promise<T>> = [];
  let nextFrom = start;
  const refill = () => {
    while (queue.length < ahead && nextFrom < end) {
      const p = fetch(nextFrom, Math.min(end, nextFrom + PAGE));
      p.catch(() => {}); // awaited in turn; an early return must not leave it unhandled
      queue.push(p);
      nextFrom += PAGE;
    }
  };
  for (let from = start; from < end; from += PAGE) {
    refill();
    const page = await (queue.shift() as Promise<T>);
    refill();
    yield page;
  }
}

/**
 * The database's leaves [start, end) with their events, in index order, read a few pages ahead,
 * each page with the stored nodes that complete in it.
 */
export function dbLeaves(
  q: Queryable,
  start: number,
  end: number,
  personalFrom: number,
): AsyncGenerator<LeafPage> {
  const keys: SubjectKeys = new Map();
  return prefetched(start, end, 3, async (from, to) => {
    const [records, stored] = await Promise.all([
      leafRecords(q, keys, from, to, personalFrom),
      storedNodes(q, from, to),
    ]);
    const page: LeafPage = records;
    page.stored = stored;
    return page;
  });
}

/** Pages of leaf records checked here, in this thread (the embedded store, an export file). */
export async function* checkedPages(
  pages: AsyncIterable<LeafPage>,
  prunedBelow: number,
): AsyncGenerator<CheckedPage> {
  let from = 0;
  for await (const page of pages) {
    const checked = checkPage(page, from, prunedBelow);
    checked.stored = page.stored;
    from += page.length;
    yield checked;
  }
}

/**
 * The database's leaves checked by the pool's workers, two pages in hand per worker, each with
 * the stored nodes that complete in it (read here: the tree walk compares them).
 */
function pooledLeaves(q: Queryable, pool: VerifyPool, size: number): AsyncGenerator<CheckedPage> {
  return prefetched(0, size, 2 * pool.count, async (from, to) => {
    const [page, stored] = await Promise.all([pool.page(from, to), storedNodes(q, from, to)]);
    page.stored = stored;
    return page;
  });
}
