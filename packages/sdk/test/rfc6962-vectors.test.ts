// Published test vectors for the SDK's Merkle proof verifiers (RFC 9162 §2.1.3.2 inclusion,
// §2.1.4.2 consistency), plus the classic RFC 6962 roots from certificate-transparency's C++
// merkle_tree_test. The JSON files under ./vectors/transparency-dev-merkle are verbatim copies of
// transparency-dev/merkle testdata (Apache-2.0); see the README.md there for paths and commits.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { leafHash, nodeHash, verifyConsistency, verifyInclusion } from "@trellis/sdk";
import { describe, expect, it } from "vitest";

const VECTORS = fileURLToPath(new URL("./vectors/transparency-dev-merkle/", import.meta.url));

/** An inclusion probe as transparency-dev/merkle's cmd/proofgen writes it (hashes in base64). */
interface InclusionProbe {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

/** A consistency probe as cmd/proofgen writes it (hashes in base64). */
interface ConsistencyProbe {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface VectorFile<T> {
  /** Path relative to the vectors directory, with forward slashes, e.g. `inclusion/1/happy-path.json`. */
  path: string;
  probe: T;
}

function listJson(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listJson(join(dir, e.name)) : [join(dir, e.name)]))
    .filter((f) => f.endsWith(".json"))
    .sort();
}

function load<T>(kind: "inclusion" | "consistency"): VectorFile<T>[] {
  return listJson(join(VECTORS, kind)).map((file) => ({
    path: relative(VECTORS, file).split(sep).join("/"),
    // Note: `leafIdx` 2^64-1 (the "leafIdx sub @1" case of a leaf at index 0) parses to an
    // unsafe JS number; the verifier has to refuse it like any other bad index.
    probe: JSON.parse(readFileSync(file, "utf8")) as T,
  }));
}

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));

/** Runs `f`; a throw counts as a rejection (the verifiers may return false or throw). */
function accepted(f: () => boolean): boolean {
  try {
    return f();
  } catch {
    return false;
  }
}

const inclusion = load<InclusionProbe>("inclusion");
const consistency = load<ConsistencyProbe>("consistency");

/** Reference MTH (RFC 9162 §2.1.1) over leaf data, built only from `leafHash`/`nodeHash`. */
function mth(leaves: Uint8Array[]): Uint8Array {
  const n = leaves.length;
  if (n === 0) throw new Error("the empty tree is not needed here");
  if (n === 1) return leafHash(leaves[0] as Uint8Array);
  let k = 1;
  while (k * 2 < n) k *= 2; // the largest power of two smaller than n
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

// certificate-transparency (C++) merkle_tree_test: the leaves, and the roots of the trees made
// of the first 1..8 of them.
const CT_LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map(fromHex);
const CT_ROOTS = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

describe("transparency-dev/merkle vectors: the files", () => {
  it("are all present and well-formed (82 inclusion, 84 consistency; a happy path per folder)", () => {
    expect(inclusion).toHaveLength(82);
    expect(consistency).toHaveLength(84);
    for (const { path, probe } of inclusion) {
      expect(Number.isInteger(probe.leafIdx) && Number.isInteger(probe.treeSize), path).toBe(true);
      const strings = [probe.root, probe.leafHash, probe.desc];
      expect(
        strings.every((s) => typeof s === "string"),
        path,
      ).toBe(true);
      expect(probe.proof === null || Array.isArray(probe.proof), path).toBe(true);
      expect(typeof probe.wantErr, path).toBe("boolean");
    }
    for (const { path, probe } of consistency) {
      expect(Number.isInteger(probe.size1) && Number.isInteger(probe.size2), path).toBe(true);
      const strings = [probe.root1, probe.root2, probe.desc];
      expect(
        strings.every((s) => typeof s === "string"),
        path,
      ).toBe(true);
      expect(probe.proof === null || Array.isArray(probe.proof), path).toBe(true);
      expect(typeof probe.wantErr, path).toBe("boolean");
    }
    const happy = (files: VectorFile<{ wantErr: boolean }>[]) =>
      files.filter((f) => !f.probe.wantErr).map((f) => f.path);
    expect(happy(inclusion)).toEqual([0, 1, 2, 3, 4].map((n) => `inclusion/${n}/happy-path.json`));
    expect(happy(consistency)).toEqual(
      [0, 1, 2, 3, 4].map((n) => `consistency/${n}/happy-path.json`),
    );
  });

  it("happy paths use the CT leaves and the roots the reference MTH computes", () => {
    for (const { path, probe } of inclusion.filter((f) => !f.probe.wantErr)) {
      const leaf = CT_LEAVES[probe.leafIdx] as Uint8Array;
      expect(hex(b64(probe.leafHash)), path).toBe(hex(leafHash(leaf)));
      expect(hex(b64(probe.root)), path).toBe(hex(mth(CT_LEAVES.slice(0, probe.treeSize))));
    }
    for (const { path, probe } of consistency.filter((f) => !f.probe.wantErr)) {
      expect(hex(b64(probe.root1)), path).toBe(hex(mth(CT_LEAVES.slice(0, probe.size1))));
      expect(hex(b64(probe.root2)), path).toBe(hex(mth(CT_LEAVES.slice(0, probe.size2))));
    }
  });
});

describe("verifyInclusion: transparency-dev/merkle testdata/inclusion", () => {
  for (const { path, probe } of inclusion) {
    const expected = probe.wantErr ? "rejects" : "accepts";
    it(`${path} (${probe.desc}): ${expected}`, () => {
      const run = () =>
        verifyInclusion(
          probe.leafIdx,
          probe.treeSize,
          b64(probe.leafHash),
          (probe.proof ?? []).map(b64),
          b64(probe.root),
        );
      if (probe.wantErr) expect(accepted(run)).toBe(false);
      else expect(run()).toBe(true);
    });
  }
});

describe("verifyConsistency: transparency-dev/merkle testdata/consistency", () => {
  for (const { path, probe } of consistency) {
    const expected = probe.wantErr ? "rejects" : "accepts";
    it(`${path} (${probe.desc}): ${expected}`, () => {
      const run = () =>
        verifyConsistency(
          probe.size1,
          probe.size2,
          (probe.proof ?? []).map(b64),
          b64(probe.root1),
          b64(probe.root2),
        );
      if (probe.wantErr) expect(accepted(run)).toBe(false);
      else expect(run()).toBe(true);
    });
  }
});

describe("RFC 6962 roots (certificate-transparency merkle_tree_test) via leafHash/nodeHash", () => {
  CT_ROOTS.forEach((root, i) => {
    it(`MTH of the first ${i + 1} leaves is ${root.slice(0, 16)}…`, () => {
      expect(hex(mth(CT_LEAVES.slice(0, i + 1)))).toBe(root);
    });
  });

  it("leafHash and nodeHash are SHA-256 over 0x00 || data and 0x01 || left || right", () => {
    expect(hex(leafHash(new Uint8Array(0)))).toBe(CT_ROOTS[0]);
    const a = leafHash(CT_LEAVES[0] as Uint8Array);
    const b = leafHash(CT_LEAVES[1] as Uint8Array);
    expect(hex(nodeHash(a, b))).toBe(CT_ROOTS[1]);
  });
});
