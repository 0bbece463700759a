import { describe, expect, it } from "vitest";
import { checkPayloadSchema, compilePayloadValidator, LIMITS } from "./payload-schema";

const ok = (schema: unknown) => {
  const r = checkPayloadSchema(schema);
  if ("issues" in r) throw new Error(JSON.stringify(r.issues));
  return r.schema;
};
const issues = (schema: unknown) => {
  const r = checkPayloadSchema(schema);
  return "issues" in r ? r.issues : [];
};

describe("payload schema safe subset", () => {
  it("accepts types, required, enums, lengths, bounds, formats, nested objects and arrays", () => {
    const s = ok({
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      required: ["name"],
      properties: {
        name: { type: "string", minLength: 1, maxLength: 80, pattern: "^[A-Za-z ]+$" },
        age: { type: "integer", minimum: 0, maximum: 150 },
        kind: { enum: ["a", "b", 3, null] },
        when: { type: "string", format: "date-time" },
        tags: {
          type: "array",
          items: { type: "string", maxLength: 20 },
          maxItems: 10,
          uniqueItems: true,
        },
        address: { type: "object", properties: { city: { type: ["string", "null"] } } },
      },
    });
    expect(s.additionalProperties).toBe(false);
    expect(
      (s.properties as Record<string, Record<string, unknown>>).address?.additionalProperties,
    ).toBe(false);
  });

  it.each([
    [
      "a remote $ref",
      { type: "object", properties: { a: { $ref: "http://x/y" } } },
      "/properties/a",
    ],
    [
      "a local $ref",
      { type: "object", $defs: { x: {} }, properties: { a: { $ref: "#/$defs/x" } } },
      "/",
    ],
    [
      "combinators",
      { type: "object", properties: { a: { oneOf: [{ type: "string" }] } } },
      "/properties/a",
    ],
    [
      "additionalProperties: true",
      { type: "object", additionalProperties: true },
      "/additionalProperties",
    ],
    [
      "an unknown format",
      { type: "object", properties: { a: { type: "string", format: "credit-card" } } },
      "/properties/a/format",
    ],
    [
      "another draft",
      { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object" },
      "/$schema",
    ],
    [
      "a long pattern",
      {
        type: "object",
        properties: { a: { type: "string", pattern: "a".repeat(LIMITS.maxPatternLength + 1) } },
      },
      "/properties/a/pattern",
    ],
  ])("rejects %s", (_name, schema, path) => {
    const found = issues(schema);
    expect(found.length).toBeGreaterThan(0);
    expect(found.map((i) => i.path)).toContain(path);
  });

  it("rejects catastrophic and invalid patterns", () => {
    expect(
      issues({ type: "object", properties: { a: { type: "string", pattern: "^(a+)+$" } } }),
    ).toEqual([{ path: "/properties/a/pattern", message: "could take exponential time to match" }]);
    expect(
      issues({ type: "object", properties: { a: { type: "string", pattern: "([a-z" } } })[0]
        ?.message,
    ).toBe("is not a valid regular expression");
  });

  it("bounds depth and size", () => {
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < LIMITS.maxDepth + 1; i++)
      deep = { type: "object", properties: { x: deep } };
    expect(issues(deep).some((i) => i.message.includes("deeper"))).toBe(true);
    const huge = {
      type: "object",
      properties: Object.fromEntries(
        Array.from({ length: 150 }, (_, i) => [
          `field_${i}`,
          { type: "string", description: "d".repeat(300) },
        ]),
      ),
    };
    expect(issues(huge)[0]?.message).toMatch(/bytes; the limit is/);
  });

  it("requires an object at the root", () => {
    expect(issues({ type: "array", items: {} })).toEqual([
      { path: "/type", message: 'must be "object"' },
    ]);
  });

  it("validates payloads and reports field paths", () => {
    const validate = compilePayloadValidator(
      ok({
        type: "object",
        required: ["n"],
        properties: { n: { type: "integer", maximum: 3 }, e: { type: "string", format: "email" } },
      }),
    );
    expect(validate({ n: 2, e: "a@b.co" })).toBeUndefined();
    expect(validate({ n: 4 })).toEqual([{ path: "/n", message: "must be <= 3" }]);
    expect(validate({ n: 1, e: "nope" })).toEqual([
      { path: "/e", message: 'must match format "email"' },
    ]);
    expect(validate({ n: 1, z: 1 })).toEqual([{ path: "/", message: 'unknown field "z"' }]);
  });
});
