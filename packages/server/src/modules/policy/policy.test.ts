import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TrellisError } from "../../lib/errors";
import { compileAppPolicy } from "./app-policy";
import { BLOCK_IDS, type BlockId, type TemplateActions } from "./blocks";
import { PolicyEngine } from "./engine";
import { parseSuite, runSuite } from "./suite";

const DIR = fileURLToPath(new URL("./blocks", import.meta.url));
const ACTIONS: TemplateActions = {
  read: ["read"],
  write: ["create", "delete"],
  creates: ["create"],
};
const engine = new PolicyEngine();
engine.addTemplate("form-intake", ACTIONS);

const compile = (blocks: string[], appId = "app_suite") => {
  const p = compileAppPolicy(engine, {
    appId,
    templateId: "form-intake",
    actions: ACTIONS,
    version: 1,
    blocks: blocks as BlockId[],
    customs: [],
  });
  if ("problems" in p) throw new Error(JSON.stringify(p.problems));
  return p;
};

describe("policy block suites (blocks/<id>.yaml)", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml"));

  it("every block ships a suite, and every suite is a block's", () => {
    expect(files.map((f) => f.replace(/\.yaml$/, "")).sort()).toEqual([...BLOCK_IDS].sort());
  });

  it.each(files)("%s: every expected decision holds", (file) => {
    const suite = parseSuite(readFileSync(`${DIR}/${file}`, "utf8"));
    const blocks = suite.app?.blocks ?? [];
    expect(blocks).toContain(file.replace(/\.yaml$/, ""));
    const env = suite.app?.environment ?? "dev";
    const policy = compile(blocks, `app_${file.replace(/\W/g, "")}`);
    const r = runSuite(
      engine,
      policy,
      { id: "app_suite", environment: env, template: "form-intake" },
      suite,
    );
    const failures = r.results.filter((x) => !x.ok);
    expect(failures, JSON.stringify(failures, null, 2)).toEqual([]);
    expect(r.passed).toBe(suite.tests.length);
    // Every suite has tests that deny and that allow: a block that decides one way only is suspect.
    expect(new Set(r.results.map((x) => x.actual))).toEqual(new Set(["allow", "deny"]));
  });

  it("a wrong expectation fails (the runner can fail)", () => {
    const suite = parseSuite(`
app: { blocks: [owner-read] }
principals: { bob: { sub: bob, scopes: [read] } }
resources: { alices: { owner: alice } }
tests:
  - { name: wrong on purpose, principal: bob, action: read, resource: alices, expect: allow }
`);
    const r = runSuite(
      engine,
      compile(["owner-read"]),
      { id: "a", environment: "dev", template: "form-intake" },
      suite,
    );
    expect(r).toMatchObject({ passed: 0, failed: 1 });
    expect(r.results[0]).toMatchObject({ expected: "allow", actual: "deny", ok: false });
  });

  it.each([
    ["not YAML", "tests: [", "/"],
    ["no tests", "principals: {}\ntests: []", "/tests"],
    [
      "an undefined principal",
      "principals: {}\nresources: { r: { owner: a } }\ntests: [{ name: x, principal: ghost, action: read, resource: r, expect: allow }]",
      "/tests/0",
    ],
    [
      "a bad expectation",
      "principals: { p: { sub: a } }\nresources: { r: { owner: a } }\ntests: [{ name: x, principal: p, action: read, resource: r, expect: maybe }]",
      "/tests/0/expect",
    ],
  ])("a suite with %s is refused with policy_test_invalid at %s", (_n, text, path) => {
    let err: unknown;
    try {
      parseSuite(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrellisError);
    expect((err as TrellisError).code).toBe("policy_test_invalid");
    expect((err as TrellisError).issues?.[0]?.path).toBe(path);
  });
});

describe("the Cedar engine", () => {
  it("validates every block against the schema, alone and all together", () => {
    for (const id of BLOCK_IDS)
      expect(() => compile([id], `app_${id.replace(/-/g, "")}`)).not.toThrow();
    expect(() => compile([...BLOCK_IDS], "app_all")).not.toThrow();
  });

  it("refuses a policy that does not parse, and one that names an attribute the schema lacks", () => {
    expect(
      engine.check("form-intake", { x: "permit (principal, action, resource) when {" })[0]?.message,
    ).toMatch(/parse/);
    const problems = engine.check("form-intake", {
      x: "permit (principal, action, resource is Trellis::Record) when { resource.salary > 1 };",
    });
    expect(problems[0]).toMatchObject({ policyId: "x" });
    expect(problems[0]?.message).toMatch(/salary/);
  });

  it("preparsed and unprepared evaluation agree, and the memo returns the same answer", () => {
    const p = compile(["owner-read", "label-scoped"], "app_memo");
    const req = {
      principal: {
        sub: "alice",
        scopes: ["read"],
        labels: ["team=hr"],
        roles: [],
        environment: "dev",
      },
      action: "read",
      resource: { id: "r1", owner: "alice", labels: ["team=hr"], state: "live" },
      app: { id: "app_memo", environment: "dev", template: "form-intake" },
    };
    const a = engine.authorize(p.setKey, p.version, req);
    const b = engine.authorizeUnprepared(p.policies, req);
    const c = engine.authorize(p.setKey, p.version, req);
    expect(a).toEqual({ decision: "allow", policyIds: ["owner-read"], errors: [] });
    expect(b).toEqual(a);
    expect(c).toBe(a);
    const other = engine.authorize(p.setKey, p.version, {
      ...req,
      resource: { ...req.resource, labels: ["team=it"] },
    });
    expect(other).toEqual({ decision: "deny", policyIds: ["label-scoped"], errors: [] });
  });
});
