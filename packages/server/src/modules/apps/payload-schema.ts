import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsImport from "ajv-formats";
import safeRegex from "safe-regex2";

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsImport as unknown as typeof addFormatsImport.default;

/**
 * The safe subset of JSON Schema an app creator may use for payload fields: types, required,
 * enums, lengths, bounds, formats and nested objects/arrays. No $ref (remote or local), no
 * combinators, no custom keywords; bounded depth, size and pattern length; patterns must not
 * backtrack catastrophically (safe-regex2 star-height check).
 */
export const LIMITS = {
  maxSchemaBytes: 32 * 1024,
  maxDepth: 6,
  maxPatternLength: 256,
  maxProperties: 200,
  maxEnum: 500,
} as const;

export const FORMATS = [
  "date",
  "date-time",
  "time",
  "email",
  "uri",
  "uuid",
  "ipv4",
  "ipv6",
  "hostname",
] as const;

const TYPES = ["string", "number", "integer", "boolean", "object", "array", "null"];
const count = { type: "integer", minimum: 0, maximum: 1_000_000 };

/** The meta-schema: which keywords a node may use, and their shapes. */
const META = {
  $id: "trellis:payload-meta",
  $ref: "#/$defs/node",
  $defs: {
    node: {
      type: "object",
      additionalProperties: false,
      properties: {
        $schema: { const: "http://json-schema.org/draft-07/schema#" },
        type: {
          anyOf: [
            { enum: TYPES },
            { type: "array", items: { enum: TYPES }, minItems: 1, maxItems: 3, uniqueItems: true },
          ],
        },
        title: { type: "string", maxLength: 200 },
        description: { type: "string", maxLength: 2000 },
        enum: {
          type: "array",
          minItems: 1,
          maxItems: LIMITS.maxEnum,
          items: {
            anyOf: [{ type: "string", maxLength: 500 }, { type: ["number", "boolean", "null"] }],
          },
        },
        const: {
          anyOf: [{ type: "string", maxLength: 500 }, { type: ["number", "boolean", "null"] }],
        },
        minLength: count,
        maxLength: count,
        pattern: { type: "string", maxLength: LIMITS.maxPatternLength },
        format: { enum: FORMATS },
        minimum: { type: "number" },
        maximum: { type: "number" },
        exclusiveMinimum: { type: "number" },
        exclusiveMaximum: { type: "number" },
        multipleOf: { type: "number", exclusiveMinimum: 0 },
        properties: {
          type: "object",
          maxProperties: LIMITS.maxProperties,
          propertyNames: { maxLength: 100 },
          additionalProperties: { $ref: "#/$defs/node" },
        },
        required: {
          type: "array",
          items: { type: "string", maxLength: 100 },
          maxItems: LIMITS.maxProperties,
          uniqueItems: true,
        },
        additionalProperties: { const: false },
        minProperties: count,
        maxProperties: count,
        items: { $ref: "#/$defs/node" },
        minItems: count,
        maxItems: count,
        uniqueItems: { type: "boolean" },
      },
    },
  },
};

export interface Issue {
  path: string;
  message: string;
}

const issuesOf = (errors: ErrorObject[] | null | undefined): Issue[] =>
  (errors ?? []).slice(0, 20).map((e) => ({
    path: e.instancePath || "/",
    message:
      e.keyword === "additionalProperties"
        ? `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : (e.message ?? "is invalid"),
  }));

function newAjv() {
  const ajv = new Ajv({
    strict: true,
    allowUnionTypes: true,
    allErrors: true,
    unicodeRegExp: true,
  });
  addFormats(ajv, [...FORMATS]);
  return ajv;
}

const metaAjv = newAjv();
const checkMeta = metaAjv.compile(META);

type Node = Record<string, unknown>;

/** Walks every schema node: depth check, pattern checks, and `additionalProperties: false` by default. */
function walk(node: Node, depth: number, path: string, issues: Issue[]): Node {
  if (depth > LIMITS.maxDepth) {
    issues.push({ path, message: `nests deeper than ${LIMITS.maxDepth} levels` });
    return node;
  }
  const out: Node = { ...node };
  if (typeof node.pattern === "string") {
    try {
      new RegExp(node.pattern, "u");
      if (!safeRegex(node.pattern)) {
        issues.push({ path: `${path}/pattern`, message: "could take exponential time to match" });
      }
    } catch {
      issues.push({ path: `${path}/pattern`, message: "is not a valid regular expression" });
    }
  }
  const isObject =
    node.type === "object" || (Array.isArray(node.type) && node.type.includes("object"));
  if (node.properties && typeof node.properties === "object") {
    const props: Node = {};
    for (const [k, v] of Object.entries(node.properties as Node)) {
      props[k] = walk(v as Node, depth + 1, `${path}/properties/${k}`, issues);
    }
    out.properties = props;
  }
  if (isObject || node.properties) out.additionalProperties = false;
  if (node.items && typeof node.items === "object") {
    out.items = walk(node.items as Node, depth + 1, `${path}/items`, issues);
  }
  return out;
}

/**
 * Checks a creator's payload schema against the safe subset and returns it normalized
 * (`additionalProperties: false` on every object), or the list of problems.
 * @example checkPayloadSchema({ type: "object", properties: { email: { type: "string", format: "email" } } })
 */
export function checkPayloadSchema(schema: unknown): { schema: Node } | { issues: Issue[] } {
  const size = Buffer.byteLength(JSON.stringify(schema ?? null));
  if (size > LIMITS.maxSchemaBytes) {
    return {
      issues: [{ path: "/", message: `is ${size} bytes; the limit is ${LIMITS.maxSchemaBytes}` }],
    };
  }
  if (!checkMeta(schema)) return { issues: issuesOf(checkMeta.errors) };
  const root = schema as Node;
  if (root.type !== "object") return { issues: [{ path: "/type", message: 'must be "object"' }] };
  const issues: Issue[] = [];
  const normalized = walk(root, 0, "", issues);
  if (issues.length > 0) return { issues };
  try {
    payloadAjv.compile(normalized); // e.g. `required` naming a field twice, min > max stays legal
  } catch (err) {
    return { issues: [{ path: "/", message: (err as Error).message.slice(0, 300) }] };
  }
  return { schema: normalized };
}

const payloadAjv = newAjv();

export type PayloadValidator = (payload: unknown) => Issue[] | undefined;

/** Compiles a checked schema; the validator returns issues, or undefined when the payload is valid. */
export function compilePayloadValidator(schema: Node): PayloadValidator {
  const validate: ValidateFunction = payloadAjv.compile(schema);
  return (payload) => (validate(payload) ? undefined : issuesOf(validate.errors));
}
