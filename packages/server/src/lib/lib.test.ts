import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor, seqFromCursor } from "./cursor";
import { base32, newId, newRecordId } from "./ids";
import { isoFromMs } from "./iso";
import { digestsEqual, open, randomSecret, seal, sha256Hex } from "./secrets";

describe("ids", () => {
  it("encode 128 bits as TypeID does (examples from the TypeID spec)", () => {
    const hex = (h: string) => Uint8Array.from(Buffer.from(h.replaceAll("-", ""), "hex"));
    expect(base32(hex("00000000-0000-0000-0000-000000000000"))).toBe("00000000000000000000000000");
    expect(base32(hex("ffffffff-ffff-ffff-ffff-ffffffffffff"))).toBe("7zzzzzzzzzzzzzzzzzzzzzzzzz");
    expect(base32(hex("01890a5d-ac96-774b-bcce-b302099a8057"))).toBe("01h455vb4pex5vsknk084sn02q");
    expect(base32(hex("00000000-0000-0000-0000-000000000001"))).toBe("00000000000000000000000001");
  });

  it("are prefixed, 26 base32 chars, and sort by creation time", async () => {
    const a = newId("app");
    await new Promise((r) => setTimeout(r, 2));
    const b = newId("app");
    expect(a).toMatch(/^app_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(a < b).toBe(true);
    expect(newRecordId()).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe("secrets", () => {
  const key = Buffer.alloc(32, 9);
  it("seal/open round-trips and binds the ciphertext to its AAD and key", () => {
    const sealed = seal(key, "private jwk", "key_1");
    expect(sealed).not.toContain("private");
    expect(open(key, sealed, "key_1")).toBe("private jwk");
    expect(() => open(key, sealed, "key_2")).toThrow();
    expect(() => open(Buffer.alloc(32, 8), sealed, "key_1")).toThrow();
    const raw = Buffer.from(sealed, "base64url");
    raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1;
    expect(() => open(key, raw.toString("base64url"), "key_1")).toThrow();
  });
  it("compares digests in constant time and generates 256-bit secrets", () => {
    expect(digestsEqual(sha256Hex("a"), sha256Hex("a"))).toBe(true);
    expect(digestsEqual(sha256Hex("a"), sha256Hex("b"))).toBe(false);
    expect(digestsEqual(sha256Hex("a"), "00")).toBe(false);
    const s = randomSecret("trl_admin");
    expect(s).toMatch(/^trl_admin_[A-Za-z0-9_-]{43}$/);
    expect(randomSecret("x")).not.toBe(randomSecret("x"));
  });
});

describe("cursors", () => {
  it("round-trip and reject forged or oversized input", () => {
    expect(decodeCursor(encodeCursor({ seq: 5 }), { seq: "number" })).toEqual({ seq: 5 });
    expect(decodeCursor("%%%", { seq: "number" })).toBeUndefined();
    expect(decodeCursor(encodeCursor({ seq: "5" }), { seq: "number" })).toBeUndefined();
    expect(
      decodeCursor(Buffer.from("[1]").toString("base64url"), { seq: "number" }),
    ).toBeUndefined();
    expect(decodeCursor(encodeCursor({ id: "x".repeat(101) }), { id: "string" })).toBeUndefined();
  });

  it("take only safe integers for a number, and a seq of at least 1 for the audit list", () => {
    const raw = (json: string) => Buffer.from(json).toString("base64url");
    for (const json of ['{"seq":1e30}', '{"seq":1.5}', '{"seq":1e400}', '{"seq":9007199254740992}'])
      expect(decodeCursor(raw(json), { seq: "number" }), json).toBeUndefined();
    expect(seqFromCursor(undefined)).toBeUndefined();
    expect(seqFromCursor(encodeCursor({ seq: Number.MAX_SAFE_INTEGER }))).toBe(
      Number.MAX_SAFE_INTEGER,
    );
    for (const seq of [0, -1, 1.5, 1e30])
      expect(() => seqFromCursor(encodeCursor({ seq })), String(seq)).toThrow(
        expect.objectContaining({ code: "invalid_request" }),
      );
  });
});

describe("isoFromMs", () => {
  it("equals toISOString for edge instants and 100 000 random ones", () => {
    const edges = [
      0,
      -1,
      1,
      86_399_999,
      Date.UTC(2000, 1, 29, 23, 59, 59, 999),
      Date.UTC(999, 0, 1),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1),
      Date.UTC(-1, 0, 1),
      8.64e15,
    ];
    for (const ms of edges) expect(isoFromMs(ms)).toBe(new Date(ms).toISOString());
    for (let i = 0; i < 100_000; i++) {
      const ms = Math.floor((Math.random() - 0.2) * 4e14);
      expect(isoFromMs(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
