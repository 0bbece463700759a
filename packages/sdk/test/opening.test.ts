import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { canonicalJson, personalCommitment, verifyOpening } from "@trellis/sdk/verify";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { personalCommitment as serverCommitment } from "../../server/src/modules/transparency/log";

// The RFC 8785 vectors the server's tests use (cyberphone/json-canonicalization, Apache-2.0;
// source and license in their README).
const VECTORS = fileURLToPath(
  new URL("../../server/test/vectors/rfc8785-jcs/testdata/", import.meta.url),
);

describe("canonicalJson (RFC 8785) in the SDK", () => {
  const cases = readdirSync(`${VECTORS}input`).filter((f) =>
    readdirSync(`${VECTORS}output`).includes(f),
  );
  it.each(cases)("%s canonicalizes to the published bytes", (name) => {
    const input = JSON.parse(readFileSync(`${VECTORS}input/${name}`, "utf8"));
    expect(Buffer.from(canonicalJson(input), "utf8")).toEqual(
      readFileSync(`${VECTORS}output/${name}`),
    );
  });

  it("equals the canonicalize library on any JSON value, and refuses what is not JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(canonicalize(v));
      }),
      { numRuns: 1000 },
    );
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });
});

describe("personal commitments (audit erasure)", () => {
  const opening = {
    salt: randomBytes(32).toString("base64"),
    actor_id: "dana",
    personal: { attrs: { email: { from: null, to: "d@example.org" } } },
  };

  it("is the server's commitment, byte for byte, for any actor and personal data", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.jsonValue(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (a, p, s) => {
          const o = { salt: Buffer.from(s).toString("base64"), actor_id: a, personal: p };
          expect(Buffer.from(personalCommitment(o))).toEqual(
            Buffer.from(serverCommitment(s, a, p)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("opens only its own event: any change to salt, actor, data or commitment fails", () => {
    const event = { personal: Buffer.from(personalCommitment(opening)).toString("base64") };
    expect(verifyOpening(event, opening)).toBe(true);
    expect(verifyOpening(event, { ...opening, actor_id: "dana " })).toBe(false);
    expect(verifyOpening(event, { ...opening, personal: null })).toBe(false);
    const salt = Buffer.from(opening.salt, "base64");
    salt[0] = (salt[0] as number) ^ 1;
    expect(verifyOpening(event, { ...opening, salt: salt.toString("base64") })).toBe(false);
    const c = Buffer.from(event.personal, "base64");
    c[31] = (c[31] as number) ^ 0x80;
    expect(verifyOpening({ personal: c.toString("base64") }, opening)).toBe(false);
    expect(verifyOpening({ personal: null }, opening)).toBe(false);
    expect(() => personalCommitment({ ...opening, salt: "c2hvcnQ=" })).toThrow(TypeError);
  });
});
