import { createHash, createHmac } from "node:crypto";
import canonicalize from "canonicalize";
import type { Queryable } from "../../db/db";
import {
  consistencyRanges,
  type Hash,
  hashBinary,
  inclusionRanges,
  mth,
  type NodeSource,
  neededForRanges,
  neededForRoot,
  newNodes,
  nodeHash,
  nodeKey,
  STORED_FROM_LEVEL,
  taggedHash,
  taggedHashString,
  textLeafHash,
  textLeafHashB64,
} from "./merkle";

/**
 * An audit event as it is stored: every column but the transaction id, timestamps as UTC ISO
 * 8601 with microseconds (as stored), plus what its leaf needs besides (the commitment an
 * erasure left, the subject's key). One SQL expression for the sequencer, the proof API, the
 * sinks and `trellis audit verify`, so all of them hash the same bytes. Use with EVENT_FROM (or
 * join `trellis.audit_events e` and `trellis.audit_subject_keys k` the same way).
 */
/** The timestamp as both forms hash it: UTC, ISO 8601 with microseconds (as stored). */
const OCCURRED_AT = `to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
/** The stored columns in one order, `policy_ids` as the caller selects it. */
const storedColumns = (policyIds: string) => `e.seq, e.event_id, ${OCCURRED_AT} AS occurred_at,
  e.actor_id, e.actor_role, e.action, e.resource_type, e.resource_id, e.app_id, e.token_id,
  ${policyIds}, e.outcome, e.error_code, e.request_id, e.diff, e.erased_commitment`;
export const EVENT_COLUMNS_STORED = storedColumns("e.policy_ids");
const SUBJECT_KEY = "k.key AS subject_key";
export const EVENT_COLUMNS = `${EVENT_COLUMNS_STORED}, ${SUBJECT_KEY}`;
/**
 * What the loops that hash every event read (the sequencer, `audit verify`): the stored columns
 * with `policy_ids` as its RFC 8785 text (`policy_ids_json`: to_json(text[]) is the array as
 * JSON.stringify writes it, no spaces), which costs the database less than the driver's parsing
 * of an array costs here. Leaves of the second form only; the first hashes EVENT_COLUMNS.
 */
export const HASHED_COLUMNS = storedColumns("to_json(e.policy_ids)::text AS policy_ids_json");
export const HASHED_EVENT_COLUMNS = `${HASHED_COLUMNS}, ${SUBJECT_KEY}`;
/**
 * A row of HASHED_COLUMNS read as a tuple (Queryable.queryTuples), in its column order; of
 * HASHED_EVENT_COLUMNS, with the subject's key last.
 */
export type HashedTuple = [
  seq: number,
  event_id: string,
  occurred_at: string,
  actor_id: string | null,
  actor_role: string,
  action: string,
  resource_type: string,
  resource_id: string | null,
  app_id: string | null,
  token_id: string | null,
  policy_ids_json: string | null,
  outcome: string,
  error_code: string | null,
  request_id: string,
  diff: Record<string, unknown> | null,
  erased_commitment: Uint8Array | null,
  subject_key?: Uint8Array | null,
];
/**
 * The row a HashedTuple is, with room for its subject's key: every row made here has one shape,
 * so the loops reading them (the sequencer, `audit verify`) see one kind of object. The
 * driver's rows cost more: their keys are set one by one, and adding the subject's key gives
 * each a new shape.
 */
export const hashedRow = (t: HashedTuple): EventRow => ({
  seq: t[0],
  event_id: t[1],
  occurred_at: t[2],
  actor_id: t[3],
  actor_role: t[4],
  action: t[5],
  resource_type: t[6],
  resource_id: t[7],
  app_id: t[8],
  token_id: t[9],
  policy_ids_json: t[10],
  outcome: t[11],
  error_code: t[12],
  request_id: t[13],
  diff: t[14],
  erased_commitment: t[15],
  subject_key: t[16] ?? null,
});
export const SUBJECT_KEY_JOIN = "LEFT JOIN trellis.audit_subject_keys k ON k.subject = e.actor_id";
export const EVENT_FROM = `trellis.audit_events e ${SUBJECT_KEY_JOIN}`;

export type EventRow = Record<string, unknown> & {
  seq: number | string;
  event_id: string;
  actor_id?: string | null;
  diff?: Record<string, unknown> | null;
  erased_commitment?: Uint8Array | null;
  subject_key?: Uint8Array | null;
};

/** RFC 8785 orders object keys by their UTF-16 code units. */
const jcsOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const STORED = [
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
];
/** The first form (leaves below `personal_from`): the stored event, whole. */
const LEGACY_KEYS = [...STORED].sort(jcsOrder);

/**
 * A text column as RFC 8785 writes a string (JSON.stringify's form: `"`, `\`, and code points
 * below U+0020 escaped, lone surrogates as \uXXXX, nothing else), or null. Most values need no
 * escape: a test for one costs about half of JSON.stringify on this project's ids and names.
 * Surrogates go to JSON.stringify too (a pair stays, a lone one is escaped).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what JSON escapes
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;
function jsonString(v: string | null | undefined): string {
  if (v === null || v === undefined) return "null";
  return ESCAPED.test(v) ? JSON.stringify(v) : `"${v}"`;
}
const isTextArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === "string");

/**
 * RFC 8785 for an object whose keys are `keys` (already in RFC 8785 order), the stored event of
 * the first form, without a copy of the row. Strings go by JSON.stringify (RFC 8785's string
 * form) and seq as an integer; only free-form JSON (`diff`) goes through the general
 * canonicalizer. test/canonical-json.test.ts checks it equals `canonicalize` on generated events.
 */
function canonicalFields(row: Record<string, unknown>, keys: readonly string[]): string {
  let out = "{";
  for (const k of keys) {
    const v = row[k];
    let text: string | undefined;
    if (k === "seq") text = String(Number(v));
    else if (v === null || v === undefined || typeof v === "string") text = jsonString(v);
    else if (k === "policy_ids" && isTextArray(v)) text = JSON.stringify(v);
    else text = canonicalize(v);
    if (text === undefined) throw new Error(`audit event field ${k} has no canonical form`);
    out += `${out.length > 1 ? "," : ""}"${k}":${text}`;
  }
  return `${out}}`;
}

/**
 * The canonical bytes (RFC 8785) of an object as a leaf of the first form hashes it: a stored
 * event read with EVENT_COLUMNS, or any object (an exported event), canonicalized whole.
 */
export function canonicalEvent(row: Record<string, unknown>): string {
  if (Object.keys(row).length === LEGACY_KEYS.length && LEGACY_KEYS.every((k) => k in row))
    return canonicalFields(row, LEGACY_KEYS);
  const text = canonicalize({ ...row, seq: Number(row.seq) });
  if (text === undefined) throw new Error("an audit event has no canonical form");
  return text;
}

/** What opens an event's personal commitment: anyone holding it can recompute `personal`. */
export interface Opening {
  /** base64 of HMAC-SHA-256(subject key, event_id). */
  salt: string;
  actor_id: string;
  /** The event's diff.personal (what the actor submitted about themselves), or null. */
  personal: unknown;
}

/** The subject's key is gone but the event still names its actor: not an erasure. */
export class SubjectKeyMissing extends Error {}

const personalBody = (actorId: string, personal: unknown) =>
  `{"actor_id":${JSON.stringify(actorId)},"personal":${personal === null || personal === undefined ? "null" : canonicalize(personal)}}`;

/** SHA-256(0x02 || salt || RFC 8785({actor_id, personal})): the commitment a leaf carries. */
export function personalCommitment(salt: Uint8Array, actorId: string, personal: unknown): Hash {
  return taggedHash(2, salt, personalBody(actorId, personal));
}

/**
 * HMAC-SHA-256 pads of the subject keys met lately: a key's pads are computed once, not per
 * event. Keyed by actor, checked against the key bytes (an erased subject gets a new key).
 */
const padCache = new Map<string, { src: Uint8Array; key: Buffer; inner: Buffer; outer: Buffer }>();

function padsFor(subjectKey: Uint8Array, actorId: string | undefined) {
  const cached = actorId === undefined ? undefined : padCache.get(actorId);
  // The same key object (a verifier's key map) needs no byte comparison.
  if (cached && (cached.src === subjectKey || cached.key.equals(subjectKey))) return cached;
  const key = Buffer.from(subjectKey);
  const inner = Buffer.alloc(64, 0x36);
  const outer = Buffer.alloc(64, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i] = (inner[i] as number) ^ (key[i] as number);
    outer[i] = (outer[i] as number) ^ (key[i] as number);
  }
  const pads = { src: subjectKey, key, inner, outer };
  if (actorId !== undefined) {
    if (padCache.size >= 10_000) padCache.clear();
    padCache.set(actorId, pads);
  }
  return pads;
}

/**
 * The per-event salt, HMAC-SHA-256(subject key, event_id) (RFC 2104 with cached pads), as a
 * binary string (one char per byte).
 */
function saltBinary(subjectKey: Uint8Array, eventId: string, actorId?: string): string {
  if (subjectKey.length > 64 || 64 + eventId.length * 3 + 32 > 64 * 1024)
    return createHmac("sha256", subjectKey).update(eventId).digest("binary");
  const pads = padsFor(subjectKey, actorId);
  return hashBinary(pads.outer, null, hashBinary(pads.inner, eventId, null));
}

/** The per-event salt: HMAC-SHA-256(subject key, event_id). */
export const eventSalt = (subjectKey: Uint8Array, eventId: string, actorId?: string): Uint8Array =>
  new Uint8Array(Buffer.from(saltBinary(subjectKey, eventId, actorId), "binary"));

const withoutPersonal = (diff: Record<string, unknown> | null | undefined) => {
  if (!diff || typeof diff !== "object" || !("personal" in diff)) return diff ?? null;
  const { personal: _, ...rest } = diff;
  return rest;
};

/**
 * The event a leaf hashes, as canonical JSON, and the opening of its personal commitment.
 * Leaves below `personal_from` (logged before erasure existed) hash the stored event whole.
 * Otherwise the actor and `diff.personal` are replaced by `personal`: the base64 commitment
 * (the one an erasure kept, once erased; null for an event without an actor).
 */
export function hashedEvent(
  row: EventRow,
  legacy: boolean,
  withOpening = true,
): { canonical: string; opening: Opening | null } {
  if (legacy) return { canonical: canonicalFields(row, LEGACY_KEYS), opening: null };
  const { erased_commitment, subject_key } = row;
  const stored = row;
  let personal: string | null = null;
  let opening: Opening | null = null;
  let diff = stored.diff ?? null;
  if (erased_commitment) {
    personal = Buffer.from(erased_commitment).toString("base64");
  } else if (typeof stored.actor_id === "string") {
    if (!subject_key)
      throw new SubjectKeyMissing(
        `event ${stored.event_id} names an actor (${JSON.stringify(stored.actor_id.slice(0, 60))}) with no audit key: its actor was changed, or their key deleted without an erasure`,
      );
    const salt = saltBinary(subject_key, stored.event_id, stored.actor_id);
    const p = diff && typeof diff === "object" ? (diff.personal ?? null) : null;
    personal = taggedHashString(2, salt, personalBody(stored.actor_id, p), "base64");
    if (withOpening)
      opening = {
        salt: Buffer.from(salt, "binary").toString("base64"),
        actor_id: stored.actor_id,
        personal: p,
      };
    diff = withoutPersonal(diff);
  }
  const d = diff === null ? "null" : canonicalize(diff);
  if (d === undefined) throw new Error("audit event field diff has no canonical form");
  return { canonical: secondForm(row, d, personal), opening };
}

/**
 * The second form's text: every stored field but the actor, keys in RFC 8785 order, with the
 * public diff's text and the commitment. Fields a row must have (NOT NULL columns, the
 * timestamp as text) are checked, so a row read some other way is refused, not hashed some
 * other way.
 */
function secondForm(row: EventRow, diff: string, personal: string | null): string {
  const { event_id, occurred_at, actor_role, action, resource_type, outcome, request_id } = row;
  if (
    typeof event_id !== "string" ||
    typeof occurred_at !== "string" ||
    typeof actor_role !== "string" ||
    typeof action !== "string" ||
    typeof resource_type !== "string" ||
    typeof outcome !== "string" ||
    typeof request_id !== "string"
  )
    throw new Error("an audit event row must be read with EVENT_COLUMNS (every stored column)");
  // From HASHED_COLUMNS as its text, from EVENT_COLUMNS as a list.
  let policies: string;
  if (row.policy_ids_json !== undefined)
    policies = (row.policy_ids_json as string | null) ?? "null";
  else if (row.policy_ids === null || row.policy_ids === undefined) policies = "null";
  else if (isTextArray(row.policy_ids)) policies = JSON.stringify(row.policy_ids);
  else throw new Error("audit event field policy_ids is not a list of text");
  return `{"action":${jsonString(action)},"actor_role":${jsonString(actor_role)},"app_id":${jsonString(row.app_id as string | null)},"diff":${diff},"error_code":${jsonString(row.error_code as string | null)},"event_id":${jsonString(event_id)},"occurred_at":${jsonString(occurred_at)},"outcome":${jsonString(outcome)},"personal":${personal === null ? "null" : `"${personal}"`},"policy_ids":${policies},"request_id":${jsonString(request_id)},"resource_id":${jsonString(row.resource_id as string | null)},"resource_type":${jsonString(resource_type)},"seq":${Number(row.seq)},"token_id":${jsonString(row.token_id as string | null)}}`;
}

/** The leaf hash of an event (see {@link hashedEvent}). */
export const eventLeafHash = (row: EventRow, legacy: boolean): Hash =>
  textLeafHash(hashedEvent(row, legacy, false).canonical);
/** The same in base64 (the verifier's loop). */
export const eventLeafHashB64 = (row: EventRow, legacy: boolean): string =>
  textLeafHashB64(hashedEvent(row, legacy, false).canonical);

/**
 * The event as its leaf hashed it: the public part and the personal commitment, never the
 * personal part itself (an auditor verifies without it, and a copy outside the database would
 * outlive an erasure). An event whose subject key is gone without an erasure is written without
 * its commitment, so the file's verification names it.
 */
export function publicForm(event: EventRow, legacy: boolean): string {
  try {
    return hashedEvent(event, legacy).canonical;
  } catch (err) {
    if (!(err instanceof SubjectKeyMissing)) throw err;
    return hashedEvent({ ...event, actor_id: null }, legacy).canonical;
  }
}

export const canonicalLeafHash = (canonical: string): Hash => textLeafHash(canonical);
/** The same, in base64 (the verifier's loop). */
export const canonicalLeafHashB64 = (canonical: string): string => textLeafHashB64(canonical);

/**
 * Reads nodes into a NodeSource: leaves and stored nodes as they are, the levels between
 * (below STORED_FROM_LEVEL) rebuilt from their leaves. A missing node is an error naming it.
 */
export async function loadNodes(
  q: Queryable,
  keys: Array<[number, number]>,
  also: Map<string, Hash> = new Map(),
): Promise<NodeSource & { map: Map<string, Hash> }> {
  const map = new Map(also);
  const wanted = keys.filter(([l, i]) => !map.has(nodeKey(l, i)));
  const rebuilt = wanted.filter(([l]) => l < STORED_FROM_LEVEL);
  const inner = wanted.filter(([l]) => l >= STORED_FROM_LEVEL);
  // The leaves under every node to rebuild (a leaf is its own: level 0, width 1).
  const leaves = new Set<number>();
  for (const [l, i] of rebuilt) {
    const w = 2 ** l;
    for (let k = i * w; k < (i + 1) * w; k++) if (!map.has(nodeKey(0, k))) leaves.add(k);
  }
  const reads: Array<Promise<void>> = [];
  if (leaves.size > 0)
    reads.push(
      q
        .query<{ idx: number; hash: Uint8Array }>(
          "SELECT leaf_index AS idx, hash FROM trellis.audit_leaves WHERE leaf_index = ANY($1::bigint[])",
          [[...leaves]],
        )
        .then(({ rows }) => {
          for (const r of rows) map.set(nodeKey(0, Number(r.idx)), new Uint8Array(r.hash));
        }),
    );
  if (inner.length > 0)
    reads.push(
      q
        .query<{ level: number; idx: number; hash: Uint8Array }>(
          `SELECT t.level, t.idx, t.hash FROM trellis.audit_tree t
             JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx)
               ON t.level = w.level AND t.idx = w.idx`,
          [inner.map(([l]) => l), inner.map(([, i]) => i)],
        )
        .then(({ rows }) => {
          for (const r of rows)
            map.set(nodeKey(Number(r.level), Number(r.idx)), new Uint8Array(r.hash));
        }),
    );
  // Both sent before either answer is awaited (on a transaction's client they still run one
  // after the other).
  await Promise.all(reads);
  const get = (level: number, idx: number): Hash => {
    const key = nodeKey(level, idx);
    let h = map.get(key);
    if (h === undefined && level > 0 && level < STORED_FROM_LEVEL) {
      h = nodeHash(get(level - 1, 2 * idx), get(level - 1, 2 * idx + 1));
      map.set(key, h);
    }
    if (h === undefined) throw new Error(`the audit tree lacks node ${level}/${idx}`);
    return h;
  };
  return { map, get };
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
  // The hashes go as one bytea (sent in binary) cut into 32-byte pieces by the database: an
  // array of byteas is text-escaped element by element, which cost more than the hashing.
  const blob = (hashes: Hash[]) => Buffer.concat(hashes);
  await tx.query(
    `INSERT INTO trellis.audit_leaves (leaf_index, event_seq, hash)
     SELECT $1::bigint + u.i - 1, u.seq, substring($3::bytea FROM ((u.i - 1) * 32 + 1)::int FOR 32)
       FROM unnest($2::bigint[]) WITH ORDINALITY AS u(seq, i)`,
    [size, leaves.map((l) => l.seq), blob(leaves.map((l) => l.hash))],
  );
  // Only the levels the store keeps: the ones below are rebuilt from these leaves when needed.
  const inner = created.filter(([l]) => l >= STORED_FROM_LEVEL);
  if (inner.length > 0)
    await tx.query(
      `INSERT INTO trellis.audit_tree (level, idx, hash)
       SELECT u.level, u.idx, substring($3::bytea FROM ((u.i - 1) * 32 + 1)::int FOR 32)
         FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY AS u(level, idx, i)`,
      [inner.map(([l]) => l), inner.map(([, i]) => i), blob(inner.map(([l, i]) => src.get(l, i)))],
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
