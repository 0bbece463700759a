import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { Queryable } from "../../db/db";
import {
  consistencyRanges,
  type Hash,
  inclusionRanges,
  leafHash,
  mth,
  type NodeSource,
  neededForRanges,
  neededForRoot,
  newNodes,
  nodeHash,
  nodeKey,
} from "./merkle";

/**
 * An audit event as a leaf commits to it: every column but the transaction id, timestamps as
 * UTC ISO 8601 with microseconds (as stored), read by one SQL expression so the sequencer, the
 * proof API and `trellis audit verify` see the same bytes. Canonical JSON is RFC 8785.
 */
export const EVENT_COLUMNS = `seq, event_id,
  to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
  actor_id, actor_role, action, resource_type, resource_id, app_id, token_id, policy_ids,
  outcome, error_code, request_id, diff`;

export type EventRow = Record<string, unknown> & { seq: number | string; event_id: string };

/** RFC 8785 orders object keys by their UTF-16 code units. */
const jcsOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const EVENT_KEYS = [
  "seq",
  "event_id",
  "occurred_at",
  "actor_id",
  "actor_role",
  "action",
  "resource_type",
  "resource_id",
  "app_id",
  "token_id",
  "policy_ids",
  "outcome",
  "error_code",
  "request_id",
  "diff",
].sort(jcsOrder);

/**
 * The canonical bytes (RFC 8785) of an event row read with EVENT_COLUMNS. The sequencer runs
 * this for every event, so the fixed columns are written directly (strings by JSON.stringify,
 * which is RFC 8785's string form; seq as an integer) and only `diff`, free-form JSON, goes
 * through the general canonicalizer. test/canonical-json.test.ts checks it equals
 * `canonicalize` on generated events.
 */
export function canonicalEvent(row: EventRow): string {
  const keys = Object.keys(row).length === EVENT_KEYS.length && EVENT_KEYS.every((k) => k in row);
  if (!keys) {
    const text = canonicalize({ ...row, seq: Number(row.seq) });
    if (text === undefined) throw new Error("an audit event has no canonical form");
    return text;
  }
  let out = "{";
  for (const k of EVENT_KEYS) {
    const v = row[k];
    let text: string | undefined;
    if (k === "seq") text = String(Number(v));
    else if (v === null || typeof v === "string") text = JSON.stringify(v);
    else if (k === "policy_ids" && Array.isArray(v) && v.every((x) => typeof x === "string"))
      text = JSON.stringify(v);
    else text = canonicalize(v);
    if (text === undefined) throw new Error(`audit event field ${k} has no canonical form`);
    out += `${out.length > 1 ? "," : ""}${JSON.stringify(k)}:${text}`;
  }
  return `${out}}`;
}

export const eventLeafHash = (row: EventRow): Hash =>
  leafHash(new TextEncoder().encode(canonicalEvent(row)));

/** Reads stored nodes into a NodeSource; a missing node is an error naming it. */
export async function loadNodes(
  q: Queryable,
  keys: Array<[number, number]>,
  also: Map<string, Hash> = new Map(),
): Promise<NodeSource & { map: Map<string, Hash> }> {
  const map = new Map(also);
  const wanted = keys.filter(([l, i]) => !map.has(nodeKey(l, i)));
  const leaves = wanted.filter(([l]) => l === 0).map(([, i]) => i);
  const inner = wanted.filter(([l]) => l > 0);
  if (leaves.length > 0) {
    // Level 0 is the leaves' own hashes.
    const { rows } = await q.query<{ idx: number; hash: Uint8Array }>(
      "SELECT leaf_index AS idx, hash FROM trellis.audit_leaves WHERE leaf_index = ANY($1::bigint[])",
      [leaves],
    );
    for (const r of rows) map.set(nodeKey(0, Number(r.idx)), new Uint8Array(r.hash));
  }
  if (inner.length > 0) {
    const { rows } = await q.query<{ level: number; idx: number; hash: Uint8Array }>(
      `SELECT t.level, t.idx, t.hash FROM trellis.audit_tree t
         JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx)
           ON t.level = w.level AND t.idx = w.idx`,
      [inner.map(([l]) => l), inner.map(([, i]) => i)],
    );
    for (const r of rows) map.set(nodeKey(Number(r.level), Number(r.idx)), new Uint8Array(r.hash));
  }
  return {
    map,
    get(level, idx) {
      const h = map.get(nodeKey(level, idx));
      if (!h) throw new Error(`the audit tree lacks node ${level}/${idx}`);
      return h;
    },
  };
}

export async function rootOf(q: Queryable, size: number): Promise<Hash> {
  if (size === 0) return new Uint8Array(createHash("sha256").digest()); // RFC 9162: MTH({}) = SHA-256()
  return mth(await loadNodes(q, neededForRoot(size)), 0, size);
}

/**
 * Appends leaves to the tree: inserts the leaf rows and every newly complete subtree's hash.
 * Returns the new size.
 */
export async function appendLeaves(
  tx: Queryable,
  size: number,
  leaves: Array<{ seq: number; hash: Hash }>,
): Promise<number> {
  if (leaves.length === 0) return size;
  const to = size + leaves.length;
  const { created, older } = newNodes(size, to);
  const fresh = new Map<string, Hash>();
  for (const [i, l] of leaves.entries()) fresh.set(nodeKey(0, size + i), l.hash);
  const src = await loadNodes(tx, older, fresh);
  for (const [level, idx] of created) {
    if (level === 0) continue;
    src.map.set(
      nodeKey(level, idx),
      nodeHash(src.get(level - 1, 2 * idx), src.get(level - 1, 2 * idx + 1)),
    );
  }
  await tx.query(
    `INSERT INTO trellis.audit_leaves (leaf_index, event_seq, hash)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])`,
    [
      leaves.map((_, i) => size + i),
      leaves.map((l) => l.seq),
      leaves.map((l) => Buffer.from(l.hash)),
    ],
  );
  const inner = created.filter(([l]) => l > 0);
  if (inner.length > 0)
    await tx.query(
      `INSERT INTO trellis.audit_tree (level, idx, hash)
       SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
      [
        inner.map(([l]) => l),
        inner.map(([, i]) => i),
        inner.map(([l, i]) => Buffer.from(src.get(l, i))),
      ],
    );
  return to;
}

export async function inclusionProof(q: Queryable, index: number, size: number): Promise<Hash[]> {
  const ranges = inclusionRanges(index, size);
  const src = await loadNodes(q, neededForRanges(ranges));
  return ranges.map(([lo, hi]) => mth(src, lo, hi));
}

export async function consistencyProof(
  q: Queryable,
  size1: number,
  size2: number,
): Promise<Hash[]> {
  const ranges = consistencyRanges(size1, size2);
  const src = await loadNodes(q, neededForRanges(ranges));
  return ranges.map(([lo, hi]) => mth(src, lo, hi));
}
