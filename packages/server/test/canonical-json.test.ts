import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  canonicalEvent,
  EVENT_COLUMNS,
  EVENT_FROM,
  type EventRow,
  eventSalt,
  HASHED_EVENT_COLUMNS,
  hashedEvent,
  personalCommitment,
} from "../src/modules/transparency/log";
import { DATASTORES, startTestApp, type TestApp } from "./harness";

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

  it("the first form (leaves logged before erasure existed) is the stored event whole", () => {
    fc.assert(
      fc.property(
        fc.record({
          ...storedColumns,
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          diff: fc.option(fc.jsonValue(), { nil: null }),
        }),
        (row) => {
          expect(hashedEvent(row as EventRow, true).canonical).toBe(canonicalize(row));
        },
      ),
      { numRuns: 300 },
    );
  });
});

/**
 * The hashed form is built here from the stored columns, strings by a fast path when they need
 * no escape, and the timestamp and (for the hashing loops) policy_ids as text the database
 * writes. Events with generated text (control characters, quotes, backslashes, non-BMP
 * characters, U+2028) are stored, read back both ways (EVENT_COLUMNS, as the proof API reads
 * them; HASHED_EVENT_COLUMNS, as the sequencer and `audit verify` do), and must give exactly
 * RFC 8785 of their public part plus the commitment.
 */
describe.each(DATASTORES)("an event's hashed form on %s", (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(kind);
    await t.app.transparency.stop();
  });
  afterAll(() => t?.close());

  // Text a PostgreSQL text value can hold: no NUL, no lone surrogate.
  const storable = (s: string) => !s.includes("\0") && Buffer.from(s).toString() === s;
  const str = fc.string({ unit: "binary", maxLength: 24 }).filter(storable);
  const nasty = fc.constantFrom(
    '"',
    "\\",
    "\u001f\b\f\n\r\t\u007f",
    "\u2028\u2029",
    "é😀\uffff",
    "</script>",
    "",
  );
  const anyText = fc.oneof(str, nasty);
  const jsonOk = (v: unknown) => !/\\u0000|\\ud[89a-f]/i.test(JSON.stringify(v));
  const outcomes = fc.constantFrom("allowed", "denied", "error");
  const event = fc.record({
    event_id: anyText,
    occurred_at: fc.date({
      min: new Date("1970-01-01T00:00:00Z"),
      max: new Date("9999-12-31T23:59:59Z"),
      noInvalidDate: true,
    }),
    actor_id: fc.option(anyText, { nil: null }),
    actor_role: fc.constantFrom("admin", "app_user", "anonymous"),
    action: anyText,
    resource_type: anyText,
    resource_id: fc.option(anyText, { nil: null }),
    app_id: fc.option(anyText, { nil: null }),
    token_id: fc.option(anyText, { nil: null }),
    policy_ids: fc.option(fc.array(anyText, { maxLength: 3 }), { nil: null }),
    outcome: outcomes,
    error_code: anyText,
    request_id: anyText,
    diff: fc.option(
      fc
        .record({ personal: fc.jsonValue(), other: fc.jsonValue() }, { requiredKeys: [] })
        .filter(jsonOk),
      { nil: null },
    ),
  });

  it("equals RFC 8785 of the public part plus the personal commitment", async () => {
    const events = fc.sample(event, { numRuns: 300, seed: 8785 });
    const key = new Uint8Array(32).fill(7);
    const actors = new Set<string>();
    for (const [i, e] of events.entries()) {
      const error_code = e.outcome === "allowed" ? null : e.error_code;
      if (e.actor_id !== null) actors.add(e.actor_id);
      await t.db.query(
        `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
           resource_type, resource_id, app_id, token_id, policy_ids, outcome, error_code,
           request_id, diff)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)`,
        [
          `${e.event_id}#${i}`, // unique
          e.occurred_at.toISOString(),
          e.actor_id,
          e.actor_role,
          e.action,
          e.resource_type,
          e.resource_id,
          e.app_id,
          e.token_id,
          e.policy_ids,
          e.outcome,
          error_code,
          e.request_id,
          e.diff === null ? null : JSON.stringify(e.diff),
        ],
      );
    }
    for (const a of actors)
      await t.db.query(
        "INSERT INTO trellis.audit_subject_keys (subject, key, created_at) VALUES ($1, $2, now())",
        [a, key],
      );
    const { rows } = await t.db.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM ${EVENT_FROM} WHERE e.event_id LIKE '%#%' ORDER BY e.seq`,
    );
    expect(rows.length).toBe(events.length);
    const { rows: hashing } = await t.db.query<EventRow>(
      `SELECT ${HASHED_EVENT_COLUMNS} FROM ${EVENT_FROM} WHERE e.event_id LIKE '%#%' ORDER BY e.seq`,
    );
    for (const [i, row] of rows.entries()) {
      const e = events[i] as (typeof events)[number];
      const { canonical, opening } = hashedEvent(row, false);
      let personal: string | null = null;
      let publicDiff: unknown = e.diff;
      if (e.actor_id !== null) {
        const salt = eventSalt(key, row.event_id);
        const p = e.diff?.personal ?? null;
        personal = Buffer.from(personalCommitment(salt, e.actor_id, p)).toString("base64");
        if (e.diff && "personal" in e.diff) {
          const { personal: _, ...rest } = e.diff;
          publicDiff = rest;
        }
        expect(opening).toEqual({
          salt: Buffer.from(salt).toString("base64"),
          actor_id: e.actor_id,
          personal: p,
        });
      } else expect(opening).toBeNull();
      const { actor_id: _, occurred_at, ...pub } = e;
      const expected = canonicalize({
        ...pub,
        event_id: `${e.event_id}#${i}`,
        occurred_at: occurred_at.toISOString().replace(/Z$/, "000Z"),
        error_code: e.outcome === "allowed" ? null : e.error_code,
        diff: JSON.parse(JSON.stringify(publicDiff)), // as jsonb keeps it: -0 is 0
        personal,
        seq: Number(row.seq),
      });
      expect(canonical, `event ${i}`).toBe(expected);
      expect(hashedEvent(hashing[i] as EventRow, false).canonical, `event ${i}`).toBe(expected);
    }
  });

  it("a row read without its hashed parts is refused, not hashed some other way", async () => {
    const { rows } = await t.db.query<EventRow>(
      "SELECT e.seq, e.event_id, e.actor_id, e.diff FROM trellis.audit_events e LIMIT 1",
    );
    expect(() => hashedEvent({ ...(rows[0] as EventRow), actor_id: null }, false)).toThrow(
      /EVENT_COLUMNS/,
    );
  });
});
