import * as crypto from "node:crypto";

/**
 * RFC 9162 Merkle tree hashes and proofs over stored subtree hashes. Node (level k, index i)
 * is the complete, aligned subtree over leaves [i·2^k, (i+1)·2^k); the store holds every leaf
 * (level 0) and every node from STORED_FROM_LEVEL up, and the levels between are rebuilt from
 * their leaves. Any MTH(D[lo:hi]) is then a few nodes joined along the right edge, so roots
 * and proofs cost O(log n) reads. Functions here are pure: they first say which nodes they need
 * (`needed*`), then compute from a map of those nodes.
 */

export type Hash = Uint8Array;

/**
 * The lowest level of interior node the store keeps (`audit_tree`). Nodes below it (covering
 * fewer than 16 leaves) are rebuilt from the leaf hashes when a root or proof needs them: a
 * few, from a few dozen leaf hashes, per root or proof. Keeping them was 15/16 of the tree's
 * rows, about one more row per event for the sequencer to write and for verify to read back
 * (docs/benchmarks.md, issue 5, tenth session: about 2 µs of PostgreSQL per event).
 */
export const STORED_FROM_LEVEL = 4;

/**
 * SHA-256 of one buffer. The sequencer and `audit verify` hash every event three or four times,
 * so these avoid a Hash object per call (`crypto.hash`, Node ≥ 20.12: about 1.6 µs against
 * 2.1–6.9 µs for createHash/update/digest with an encoded copy on this machine) and write their
 * input into one reused scratch buffer. Synchronous, so the scratch is never shared.
 */
function hashTo(data: Uint8Array, enc: "buffer" | "binary" | "base64"): Hash | string {
  if (typeof crypto.hash === "function")
    return enc === "buffer"
      ? crypto.hash("sha256", data, "buffer")
      : crypto.hash("sha256", data, enc);
  const h = crypto.createHash("sha256").update(data);
  return enc === "buffer" ? h.digest() : h.digest(enc);
}
const sha256 = (data: Uint8Array): Hash => hashTo(data, "buffer") as Hash;
const scratch = Buffer.allocUnsafe(64 * 1024);
/**
 * The scratch's first n bytes, one view per length made once: a fresh subarray per hash was a
 * Buffer object per hash to allocate and collect (about 0.1 µs each in `audit verify`).
 */
const views: Buffer[] = [];
const head = (n: number): Buffer => {
  let v = views[n];
  if (v === undefined) {
    v = scratch.subarray(0, n);
    views[n] = v;
  }
  return v;
};

/**
 * SHA-256(tag || prefix || text as UTF-8), without an encoded copy of the text; the prefix as
 * bytes or as a binary string (one char per byte), the hash as bytes or as a string.
 */
function tagged(
  tag: number,
  prefix: Uint8Array | string | null,
  text: string,
  enc: "buffer" | "binary" | "base64",
): Hash | string {
  const start = 1 + (prefix?.length ?? 0);
  if (start + text.length * 3 > scratch.length) {
    const h = crypto.createHash("sha256").update(Uint8Array.of(tag));
    if (typeof prefix === "string") h.update(prefix, "binary");
    else if (prefix) h.update(prefix);
    h.update(text, "utf8");
    return enc === "buffer" ? h.digest() : h.digest(enc);
  }
  scratch[0] = tag;
  if (typeof prefix === "string") scratch.write(prefix, 1, "binary");
  else if (prefix) scratch.set(prefix, 1);
  const n = text.length === 0 ? 0 : scratch.write(text, start, "utf8");
  const data = head(start + n);
  return hashTo(data, enc);
}

/** SHA-256(tag || prefix || text as UTF-8), as bytes. */
export const taggedHash = (tag: number, prefix: Uint8Array | null, text: string): Hash =>
  tagged(tag, prefix, text, "buffer") as Hash;

export function leafHash(data: Uint8Array): Hash {
  if (data.length + 1 > scratch.length)
    return crypto.createHash("sha256").update(Uint8Array.of(0)).update(data).digest();
  scratch[0] = 0;
  scratch.set(data, 1);
  return sha256(head(data.length + 1));
}

/** The leaf hash of a string's UTF-8 bytes (an event's canonical JSON). */
export const textLeafHash = (text: string): Hash => taggedHash(0, null, text);

/*
 * The same hashes with hashes as strings ("binary": one char per byte; or base64), for the
 * loops that hash every event (sequencer, `audit verify`): a string is an ordinary heap object,
 * while every Buffer a hash returns carries its own backing store, and allocating and collecting
 * those was a quarter of `audit verify`'s time.
 *
 * taggedHashString: SHA-256(tag || prefix (binary string) || text as UTF-8), as `enc`.
 */
export const taggedHashString = (
  tag: number,
  prefix: string | null,
  text: string,
  enc: "binary" | "base64",
): string => tagged(tag, prefix, text, enc) as string;

/** A leaf hash in base64 from the leaf's text. */
export const textLeafHashB64 = (text: string): string => taggedHashString(0, null, text, "base64");

/**
 * An interior node's hash into `out` at `at`, from its children's 32 bytes at `l` in `left`
 * and `r` in `right`: no Buffer or string per node escapes (`audit verify` hashes one per
 * leaf). The bytes are copied in JS loops, which cost less than a call into a copy routine
 * at this size.
 */
export function nodeHashInto(
  left: Uint8Array,
  l: number,
  right: Uint8Array,
  r: number,
  out: Uint8Array,
  at: number,
): void {
  scratch[0] = 1;
  for (let k = 0; k < 32; k++) scratch[1 + k] = left[l + k] as number;
  for (let k = 0; k < 32; k++) scratch[33 + k] = right[r + k] as number;
  const h = hashTo(head(65), "binary") as string;
  for (let k = 0; k < 32; k++) out[at + k] = h.charCodeAt(k);
}

/** SHA-256(prefix || UTF-8 `text` || binary-string `tail`), as a binary string (HMAC's two hashes). */
export function hashBinary(prefix: Uint8Array, text: string | null, tail: string | null): string {
  scratch.set(prefix, 0);
  let n = prefix.length;
  if (text !== null) n += scratch.write(text, n, "utf8");
  if (tail !== null) n += scratch.write(tail, n, "binary");
  return hashTo(head(n), "binary") as string;
}

export function nodeHash(left: Hash, right: Hash): Hash {
  scratch[0] = 1;
  scratch.set(left, 1);
  scratch.set(right, 33);
  return sha256(head(65));
}

/** A stored node's key. */
export const nodeKey = (level: number, idx: number) => `${level}:${idx}`;

/** The largest power of two strictly below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2 of n when n is a power of two, else -1. */
function exactLevel(n: number): number {
  let level = 0;
  let x = n;
  while (x > 1) {
    if (x % 2 !== 0) return -1;
    x /= 2;
    level += 1;
  }
  return x === 1 ? level : -1;
}

/** The stored nodes MTH(D[lo:hi]) is made of. */
function mthNodes(lo: number, hi: number, out: Array<[number, number]>): void {
  const n = hi - lo;
  const level = exactLevel(n);
  if (level >= 0 && lo % n === 0) {
    out.push([level, lo / n]);
    return;
  }
  const k = split(n);
  mthNodes(lo, lo + k, out);
  mthNodes(lo + k, hi, out);
}

export interface NodeSource {
  get(level: number, idx: number): Hash;
}

/** MTH(D[lo:hi]) from stored nodes (hi > lo). */
export function mth(src: NodeSource, lo: number, hi: number): Hash {
  const n = hi - lo;
  const level = exactLevel(n);
  if (level >= 0 && lo % n === 0) return src.get(level, lo / n);
  const k = split(n);
  return nodeHash(mth(src, lo, lo + k), mth(src, lo + k, hi));
}

/** The nodes a root of `size` leaves needs. */
export function neededForRoot(size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (size > 0) mthNodes(0, size, out);
  return out;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]), as the MTH ranges it is made of. */
function pathRanges(m: number, lo: number, hi: number, out: Array<[number, number]>): void {
  const n = hi - lo;
  if (n <= 1) return;
  const k = split(n);
  if (m < lo + k) {
    pathRanges(m, lo, lo + k, out);
    out.push([lo + k, hi]);
  } else {
    pathRanges(m, lo + k, hi, out);
    out.push([lo, lo + k]);
  }
}

/** RFC 9162 §2.1.4.1 SUBPROOF(m, D[lo:hi], b), as MTH ranges. */
function subproofRanges(
  m: number,
  lo: number,
  hi: number,
  whole: boolean,
  out: Array<[number, number]>,
): void {
  const n = hi - lo;
  if (m === n) {
    if (!whole) out.push([lo, hi]);
    return;
  }
  const k = split(n);
  if (m <= k) {
    subproofRanges(m, lo, lo + k, whole, out);
    out.push([lo + k, hi]);
  } else {
    subproofRanges(m - k, lo + k, hi, false, out);
    out.push([lo, lo + k]);
  }
}

export function inclusionRanges(index: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  pathRanges(index, 0, size, out);
  return out;
}

export function consistencyRanges(size1: number, size2: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (size1 > 0 && size1 < size2) subproofRanges(size1, 0, size2, true, out);
  return out;
}

/** The stored nodes a list of MTH ranges needs. */
export function neededForRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of ranges) mthNodes(lo, hi, out);
  return out;
}

/**
 * After appending leaves [from, to) to a tree of `from` leaves: the complete subtrees that now
 * exist and did not before, level by level (level 0 = the new leaves themselves), and the older
 * nodes their hashes need (the left siblings on the old right edge).
 */
export function newNodes(
  from: number,
  to: number,
): {
  created: Array<[number, number]>;
  older: Array<[number, number]>;
} {
  const created: Array<[number, number]> = [];
  const older: Array<[number, number]> = [];
  for (let level = 0, width = 1; width <= to; level += 1, width *= 2) {
    const first = Math.floor(from / width); // the first node not complete before
    const last = Math.floor(to / width); // exclusive
    for (let i = first; i < last; i++) {
      created.push([level, i]);
      if (level > 0) {
        const left = 2 * i;
        // A left child complete before `from` came from an earlier integration.
        if ((left + 1) * (width / 2) <= from) older.push([level - 1, left]);
      }
    }
  }
  return { created, older };
}
