/**
 * Stress for the Cedar engine: many decisions with varied records (memo misses and hits mixed),
 * as a busy gateway makes them. Guards against the Node 20 V8 crash described in
 * src/modules/policy/engine.ts; test/cedar-stress.test.ts runs it in a child process.
 *
 *   npx tsx packages/server/bench/stress-cedar.ts [milliseconds, default 10000] [decisions, default 0]
 *
 * Runs for at least that long and at least that many decisions (a loaded machine makes fewer per
 * second: the count keeps the load the same, the run just takes longer). Prints
 * `ok <decisions>` and exits 0 when the run completes.
 */
import { randomUUID } from "node:crypto";
import { compileAppPolicy, decide } from "../src/modules/policy/app-policy";
import type { TemplateActions } from "../src/modules/policy/blocks";
import { PolicyEngine } from "../src/modules/policy/engine";

const ACTIONS: TemplateActions = {
  read: ["read"],
  write: ["create", "delete"],
  creates: ["create"],
};
const engine = new PolicyEngine();
engine.addTemplate("form-intake", ACTIONS);
const policy = compileAppPolicy(engine, {
  appId: "app_stress",
  templateId: "form-intake",
  actions: ACTIONS,
  version: 1,
  blocks: ["owner-read", "owner-write", "app-read", "label-scoped", "assigned-reviewer"],
  customs: [],
});
if ("problems" in policy) throw new Error(JSON.stringify(policy.problems));

const ms = Number(process.argv[2] ?? 10_000);
const atLeast = Number(process.argv[3] ?? 0);
if (!Number.isInteger(ms) || ms < 0 || !Number.isInteger(atLeast) || atLeast < 0)
  throw new Error("usage: stress-cedar.ts [milliseconds] [decisions]");
const end = Date.now() + ms;
let n = 0;
while (Date.now() < end || n < atLeast) {
  const i = n % 97;
  decide(engine, policy, {
    principal: {
      sub: `user${i % 5}`,
      scopes: i % 3 ? ["create", "read", "delete"] : ["read:all"],
      labels: i % 2 ? ["team=hr"] : [],
      roles: [],
      environment: "dev",
    },
    action: ["read", "create", "delete"][i % 3] as string,
    resource: {
      // A fresh id every time: every decision is a memo miss that reaches Cedar.
      id: randomUUID(),
      owner: `user${i % 7}`,
      labels: i % 4 ? ["team=hr"] : ["team=it"],
      reviewer: i % 5 ? null : "user1",
      state: "live",
    },
    app: { id: "app_stress", environment: "dev", template: "form-intake" },
  });
  n++;
}
process.stdout.write(`ok ${n}\n`);
