import { parse } from "yaml";
import { z } from "zod";
import { TrellisError } from "../../lib/errors";
import { labelsToSet } from "../../lib/labels";
import { type AppPolicy, decide } from "./app-policy";
import type { Decision, PolicyEngine, Principal, RecordResource } from "./engine";

/**
 * Policy test suites in YAML: named principals and resources, then the expected decision of
 * each (principal, action, resource). Every block ships one (blocks/<id>.yaml, run by
 * `npm test`); an app owner runs the same format against an app's own policies with
 * `POST /admin/v1/apps/:app/policy/test` (`trellis policy test APP FILE`).
 */
const Labels = z.record(z.string(), z.string()).default({});
const SuitePrincipal = z.strictObject({
  sub: z.string().min(1).max(200),
  scopes: z.array(z.string().max(64)).max(16).default([]),
  labels: Labels,
  roles: z.array(z.string().max(64)).max(16).default([]),
  environment: z.enum(["dev", "staging", "prod"]).optional(),
});
const SuiteResource = z.strictObject({
  owner: z.string().min(1).max(200),
  labels: Labels,
  reviewer: z.string().min(1).max(200).nullable().default(null),
  state: z.string().max(40).default("live"),
});
export const PolicySuite = z.strictObject({
  description: z.string().max(2000).optional(),
  /** Block suites only: the app the suite runs against (ignored for an app's own suite). */
  app: z
    .strictObject({
      blocks: z.array(z.string()).min(1),
      environment: z.enum(["dev", "staging", "prod"]).default("dev"),
    })
    .optional(),
  principals: z.record(z.string(), SuitePrincipal),
  resources: z.record(z.string(), SuiteResource).default({}),
  tests: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(200),
        principal: z.string(),
        action: z.string(),
        resource: z.string(),
        expect: z.enum(["allow", "deny"]),
      }),
    )
    .min(1)
    .max(1000),
});
export type PolicySuite = z.infer<typeof PolicySuite>;

/** Parses a suite; a bad one is a `policy_test_invalid` naming where. */
export function parseSuite(text: string): PolicySuite {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 10 });
  } catch (err) {
    throw new TrellisError("policy_test_invalid", [
      { path: "/", message: (err as Error).message.split("\n")[0]?.slice(0, 200) ?? "bad YAML" },
    ]);
  }
  const r = PolicySuite.safeParse(doc);
  if (!r.success) {
    throw new TrellisError(
      "policy_test_invalid",
      r.error.issues.slice(0, 20).map((i) => ({
        path: `/${i.path.join("/")}`,
        message: i.message,
      })),
    );
  }
  for (const [i, t] of r.data.tests.entries()) {
    const missing = [
      ...(r.data.principals[t.principal] ? [] : [`principal "${t.principal}"`]),
      ...(r.data.resources[t.resource] ? [] : [`resource "${t.resource}"`]),
    ];
    if (missing.length > 0)
      throw new TrellisError("policy_test_invalid", [
        { path: `/tests/${i}`, message: `names an undefined ${missing.join(" and ")}` },
      ]);
  }
  return r.data;
}

export interface SuiteResult {
  name: string;
  expected: "allow" | "deny";
  actual: "allow" | "deny";
  ok: boolean;
  policy_ids: string[];
}

/** Runs a suite against a compiled app policy. */
export function runSuite(
  engine: PolicyEngine,
  policy: AppPolicy,
  app: { id: string; environment: string; template: string },
  suite: PolicySuite,
): { passed: number; failed: number; results: SuiteResult[] } {
  const actions = new Set([...policy.actions.read, ...policy.actions.write]);
  const results = suite.tests.map((t, i): SuiteResult => {
    if (!actions.has(t.action)) {
      throw new TrellisError("policy_test_invalid", [
        { path: `/tests/${i}/action`, message: `not an action of this template: ${t.action}` },
      ]);
    }
    const p = suite.principals[t.principal];
    const r = suite.resources[t.resource];
    if (!p || !r) throw new TrellisError("policy_test_invalid"); // parseSuite checked
    const principal: Principal = {
      sub: p.sub,
      scopes: [...new Set(p.scopes)].sort(),
      labels: labelsToSet(p.labels, `/principals/${t.principal}/labels`),
      roles: p.roles,
      environment: p.environment ?? app.environment,
    };
    const resource: RecordResource = {
      id: t.resource,
      owner: r.owner,
      labels: labelsToSet(r.labels, `/resources/${t.resource}/labels`),
      reviewer: r.reviewer,
      state: r.state,
    };
    const d: Decision = decide(engine, policy, { principal, action: t.action, resource, app });
    return {
      name: t.name,
      expected: t.expect,
      actual: d.decision,
      ok: d.decision === t.expect,
      policy_ids: d.policyIds,
    };
  });
  const passed = results.filter((r) => r.ok).length;
  return { passed, failed: results.length - passed, results };
}
