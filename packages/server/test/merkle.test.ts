import { createHash, createHmac } from "node:crypto";
import { verifyConsistency, verifyInclusion } from "@trellis/sdk";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventSalt } from "../src/modules/transparency/log";
import {
  consistencyRanges,
  type Hash,
  inclusionRanges,
  leafHash,
  mth,
  type NodeSource,
  newNodes,
  nodeHash,
  nodeHashInto,
  nodeKey,
  textLeafHash,
  textLeafHashB64,
} from "../src/modules/transparency/merkle";

/** RFC 9162 §2.1.1, straight from the definition: the reference the stored-node tree must equal. */
function reference(leaves: Hash[]): Hash {
  if (leaves.length === 1) return leaves[0] as Hash;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(reference(leaves.slice(0, k)), reference(leaves.slice(k)));
}

/** A tree grown in batches the way the sequencer grows it (newNodes), in memory. */
function grow(batches: number[]) {
  const nodes = new Map<string, Hash>();
  const leaves: Hash[] = [];
  const src: NodeSource = {
    get(level, idx) {
      const h = nodes.get(nodeKey(level, idx));
      if (!h) throw new Error(`missing ${level}/${idx}`);
      return h;
    },
  };
  for (const n of batches) {
    const from = leaves.length;
    for (let i = 0; i < n; i++) leaves.push(leafHash(Uint8Array.of(from + i, (from + i) >> 8)));
    const { created, older } = newNodes(from, from + n);
    for (const [l, i] of older) expect(nodes.has(nodeKey(l, i)), `older ${l}/${i}`).toBe(true);
    for (const [level, idx] of created) {
      nodes.set(
        nodeKey(level, idx),
        level === 0
          ? (leaves[idx] as Hash)
          : nodeHash(src.get(level - 1, 2 * idx), src.get(level - 1, 2 * idx + 1)),
      );
    }
  }
  return { nodes, leaves, src };
}

const flip = (h: Hash, bit: number) => {
  const c = new Uint8Array(h);
  c[bit >> 3] = (c[bit >> 3] as number) ^ (1 << (bit & 7));
  return c;
};

describe("the stored-node Merkle tree", () => {
  it("grown in any batches, its roots equal RFC 9162's definition at every size", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }),
        (batches) => {
          const { leaves, src } = grow(batches);
          for (let size = 1; size <= leaves.length; size++)
            expect(Buffer.from(mth(src, 0, size))).toEqual(
              Buffer.from(reference(leaves.slice(0, size))),
            );
        },
      ),
      { numRuns: 60 },
    );
  });

  it("its inclusion and consistency proofs verify with the SDK, and any flipped bit fails", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (batches, a, b, bit) => {
          const { leaves, src } = grow(batches);
          const size = leaves.length;
          const index = a % size;
          const root = mth(src, 0, size);
          const proof = inclusionRanges(index, size).map(([lo, hi]) => mth(src, lo, hi));
          const leaf = leaves[index] as Hash;
          expect(verifyInclusion(index, size, leaf, proof, root)).toBe(true);
          expect(verifyInclusion(index, size, flip(leaf, bit % 256), proof, root)).toBe(false);
          expect(verifyInclusion(index, size, leaf, proof, flip(root, bit % 256))).toBe(false);
          if (proof.length > 0) {
            const j = bit % proof.length;
            const bad = proof.map((p, i) => (i === j ? flip(p, bit % 256) : p));
            expect(verifyInclusion(index, size, leaf, bad, root)).toBe(false);
            expect(verifyInclusion(index, size, leaf, proof.slice(1), root)).toBe(false);
          }
          expect(verifyInclusion(index, size, leaf, [...proof, root], root)).toBe(false);
          const size1 = 1 + (b % size);
          const c = consistencyRanges(size1, size).map(([lo, hi]) => mth(src, lo, hi));
          const root1 = mth(src, 0, size1);
          expect(verifyConsistency(size1, size, c, root1, root)).toBe(true);
          if (c.length > 0) {
            const j = bit % c.length;
            expect(
              verifyConsistency(
                size1,
                size,
                c.map((p, i) => (i === j ? flip(p, bit % 256) : p)),
                root1,
                root,
              ),
            ).toBe(false);
          }
          if (size1 < size)
            expect(verifyConsistency(size1, size, c, flip(root1, bit % 256), root)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses malformed input: hashes not 32 bytes, sizes not safe integers", () => {
    const h = leafHash(new Uint8Array());
    expect(() => verifyInclusion(0, 1, h.slice(1), [], h)).toThrow(TypeError);
    expect(() => verifyInclusion(-1, 1, h, [], h)).toThrow(TypeError);
    expect(() => verifyInclusion(0, 2 ** 53, h, [], h)).toThrow(TypeError);
    expect(() => verifyConsistency(1, 2, [h.slice(2)], h, h)).toThrow(TypeError);
    expect(verifyInclusion(1, 1, h, [], h)).toBe(false);
    expect(verifyInclusion(0, 1, h, [], h)).toBe(true);
  });
});

describe("the hot loops' hashes (strings, reused scratch) equal the plain definitions", () => {
  const sha = (...parts: Array<Uint8Array | string>) => {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    return h.digest();
  };
  it("leaf and node hashes, in base64 and as bytes, for any text (also past the scratch)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 300 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (text, l, r) => {
          const want = sha(Uint8Array.of(0), Buffer.from(text, "utf8"));
          expect(textLeafHashB64(text)).toBe(want.toString("base64"));
          expect(Buffer.from(textLeafHash(text))).toEqual(want);
          expect(Buffer.from(leafHash(Buffer.from(text, "utf8")))).toEqual(want);
          const node = sha(Uint8Array.of(1), l, r);
          expect(Buffer.from(nodeHash(l, r))).toEqual(node);
          // Into a buffer, also over one of its children (as the verifier's compact range does).
          const buf = new Uint8Array(96);
          buf.set(l, 0);
          buf.set(r, 64);
          nodeHashInto(buf, 0, buf, 64, buf, 32);
          expect(Buffer.from(buf.subarray(32, 64))).toEqual(node);
          nodeHashInto(buf, 0, buf, 64, buf, 0);
          expect(Buffer.from(buf.subarray(0, 32))).toEqual(node);
          expect(Buffer.from(buf.subarray(64))).toEqual(Buffer.from(r));
        },
      ),
      { numRuns: 300 },
    );
    const big = "é".repeat(40_000); // 80 000 bytes: larger than the scratch buffer
    expect(textLeafHashB64(big)).toBe(sha(Uint8Array.of(0), Buffer.from(big)).toString("base64"));
  });

  it("event salts are HMAC-SHA-256(subject key, event_id), also when a subject's key changes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ maxLength: 100 }),
        (key, id) => {
          const want = createHmac("sha256", key).update(id).digest();
          expect(Buffer.from(eventSalt(key, id, "same-actor"))).toEqual(want);
          expect(Buffer.from(eventSalt(key, id))).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});
