import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalEvent,
  eventSalt,
  hashedEvent,
  personalCommitment,
} from "../src/modules/transparency/log";

// RFC 8785 vectors (cyberphone/json-canonicalization, Apache-2.0), copied from the shared
// vectors with their README (test/vectors/rfc8785-jcs/README.md: source, license).
const VECTORS = fileURLToPath(new URL("./vectors/rfc8785-jcs/", import.meta.url));

/** A stored event's columns but seq and diff, as generated input. */
const text = fc.option(fc.string({ unit: "binary", maxLength: 30 }), { nil: null });
const storedColumns = {
  event_id: fc.string({ minLength: 1, maxLength: 30 }),
  occurred_at: fc.string(),
  actor_id: text,
  actor_role: fc.constantFrom("admin", "app_user", "anonymous"),
  action: fc.string(),
  resource_type: fc.string(),
  resource_id: text,
  app_id: text,
  token_id: text,
  policy_ids: fc.option(fc.array(fc.string({ unit: "binary" })), { nil: null }),
  outcome: fc.string(),
  error_code: text,
  request_id: fc.string(),
};

describe("canonical JSON (RFC 8785) for audit leaves", () => {
  const cases = readdirSync(`${VECTORS}testdata/input`).filter((f) =>
    readdirSync(`${VECTORS}testdata/output`).includes(f),
  );

  it.each(cases)("%s canonicalizes to the published bytes", (name) => {
    const input = JSON.parse(readFileSync(`${VECTORS}testdata/input/${name}`, "utf8"));
    const expected = readFileSync(`${VECTORS}testdata/output/${name}`);
    expect(Buffer.from(canonicalize(input) as string, "utf8")).toEqual(expected);
  });

  it("serializes the first 10,000 published IEEE 754 numbers as ES6 does", () => {
    const lines = readFileSync(`${VECTORS}es6_numbers_first10000.txt`, "utf8").trim().split("\n");
    expect(lines.length).toBe(10_000);
    for (const line of lines) {
      const [hex, want] = line.split(",") as [string, string];
      const n = Buffer.from(hex.padStart(16, "0"), "hex").readDoubleBE(0);
      if (!Number.isFinite(n)) continue; // not JSON
      expect(canonicalize(n), hex).toBe(want);
    }
  });

  it("an event's canonical form does not depend on key order or the driver's int8 type", () => {
    const a = canonicalEvent({
      seq: "7",
      event_id: "evt_1",
      action: "app.get",
      diff: { b: 1, a: [2, { d: 1, c: 0 }] },
    });
    const b = canonicalEvent({
      diff: { a: [2, { c: 0, d: 1 }], b: 1 },
      action: "app.get",
      event_id: "evt_1",
      seq: 7,
    });
    expect(a).toBe(b);
    expect(a).toBe(
      '{"action":"app.get","diff":{"a":[2,{"c":0,"d":1}],"b":1},"event_id":"evt_1","seq":7}',
    );
  });

  it("the fast path for a stored event's columns equals the general RFC 8785 canonicalizer", () => {
    fc.assert(
      fc.property(
        fc.record({
          ...storedColumns,
          seq: fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1 }).map(String)),
          diff: fc.option(fc.jsonValue(), { nil: null }),
        }),
        (row) => {
          const expected = canonicalize({ ...row, seq: Number(row.seq) });
          expect(canonicalEvent(row)).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("an event's hashed form (personal commitment) equals RFC 8785 of its public part plus the commitment", () => {
    const key = new Uint8Array(32).fill(7);
    fc.assert(
      fc.property(
        fc.record({
          ...storedColumns,
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          diff: fc.option(
            fc.record({ personal: fc.jsonValue(), other: fc.jsonValue() }, { requiredKeys: [] }),
            { nil: null },
          ),
        }),
        (row) => {
          const { canonical, opening } = hashedEvent({ ...row, subject_key: key }, false);
          const { actor_id, diff, ...pub } = row;
          let personal: string | null = null;
          let publicDiff: unknown = diff;
          if (actor_id !== null) {
            const salt = eventSalt(key, row.event_id);
            const p = diff?.personal ?? null;
            personal = Buffer.from(personalCommitment(salt, actor_id, p)).toString("base64");
            if (diff && "personal" in diff) {
              const { personal: _, ...rest } = diff;
              publicDiff = rest;
            }
            expect(opening).toEqual({
              salt: Buffer.from(salt).toString("base64"),
              actor_id,
              personal: p,
            });
          } else expect(opening).toBeNull();
          expect(canonical).toBe(canonicalize({ ...pub, diff: publicDiff, personal }));
          // The first form (leaves logged before erasure existed) is the stored event whole.
          expect(hashedEvent({ ...row, subject_key: key }, true).canonical).toBe(canonicalize(row));
        },
      ),
      { numRuns: 500 },
    );
  });
});
