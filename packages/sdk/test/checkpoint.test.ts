import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { noteSignerFromKey } from "../../server/src/modules/transparency/note";
import { parseVerifierKey, verifyCheckpoint } from "../src/verify.js";

/** A fresh Ed25519 note key for `origin`, optionally one whose base64 holds a "+". */
function newSigner(origin: string, wantPlus = false) {
  for (;;) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const raw = new Uint8Array(
      Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url"),
    );
    const s = noteSignerFromKey(origin, privateKey, raw);
    if (!wantPlus || s.verifierKey.split("+").length > 3) return s;
  }
}
const root = new Uint8Array(32).fill(7);

describe("verifyCheckpoint (C2SP signed note + tlog checkpoint)", () => {
  const s = newSigner("trellis-audit/test");
  const note = s.signCheckpoint(42, root);

  it("accepts a checkpoint signed by the key, and returns its size and root", () => {
    const cp = verifyCheckpoint(note, s.verifierKey);
    expect(cp).toMatchObject({ origin: "trellis-audit/test", treeSize: 42, extensions: [] });
    expect(Buffer.from(cp.rootHash)).toEqual(Buffer.from(root));
  });

  it("parses a verifier key whose base64 contains +", () => {
    const p = newSigner("trellis-audit/plus", true);
    expect(parseVerifierKey(p.verifierKey).name).toBe("trellis-audit/plus");
    expect(verifyCheckpoint(p.signCheckpoint(1, root), p.verifierKey).treeSize).toBe(1);
  });

  it.each([
    ["another size", note.replace("\n42\n", "\n43\n")],
    [
      "another root",
      note.replace(
        Buffer.from(root).toString("base64"),
        Buffer.from(new Uint8Array(32)).toString("base64"),
      ),
    ],
    ["another origin line", note.replace("trellis-audit/test\n42", "trellis-audit/other\n42")],
    ["no signature", note.slice(0, note.indexOf("\n\n") + 2)],
    ["a cut signature", note.replace(/ ([A-Za-z0-9+/=]{20})[A-Za-z0-9+/=]+\n$/, " $1\n")],
    ["no blank line", note.replace("\n\n", "\n")],
  ])("refuses %s", (_n, text) => {
    expect(() => verifyCheckpoint(text, s.verifierKey)).toThrow();
  });

  it("refuses a checkpoint signed by another key, even under the same name", () => {
    const other = newSigner("trellis-audit/test");
    expect(() => verifyCheckpoint(other.signCheckpoint(42, root), s.verifierKey)).toThrow(
      /no signature/,
    );
  });

  it("refuses malformed verifier keys", () => {
    const [name, id, key] = [
      s.verifierKey.slice(0, s.verifierKey.indexOf("+")),
      ...s.verifierKey.slice(s.verifierKey.indexOf("+") + 1).split(/\+(.*)/s),
    ];
    expect(() => parseVerifierKey(`${name}+00000000+${key}`)).toThrow(/key id/);
    expect(() => parseVerifierKey(`${name}+${id}`)).toThrow();
    expect(() => parseVerifierKey(`other+${id}+${key}`)).toThrow(/key id/);
  });
});
