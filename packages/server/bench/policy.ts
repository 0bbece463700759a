/**
 * Policy decisions per second, in-process (no server, no database): the app's Cedar policy set
 * (form-intake's default blocks plus label-scoped) deciding reads of varied records, three ways:
 *  - unprepared: `isAuthorized` parsing the policies and schema on every call;
 *  - preparsed:  `statefulIsAuthorized` on the set preparsed once (what the gateway uses);
 *  - memo:       the gateway's decision memo in front of it (a repeated request is a map hit).
 * Rounds interleave the variants; medians are reported.
 */
import { compileAppPolicy } from "../src/modules/policy/app-policy";
import type { TemplateActions } from "../src/modules/policy/blocks";
import { type CedarRequest, PolicyEngine } from "../src/modules/policy/engine";

export type PolicyVariant = "unprepared" | "preparsed" | "memo";
export interface PolicyBenchResult {
  perRound: Record<PolicyVariant, number[]>;
  median: Record<PolicyVariant, number>;
  /** preparsed / unprepared, of medians */
  preparsedRatio: number;
}

const ACTIONS: TemplateActions = {
  read: ["read"],
  write: ["create", "delete"],
  creates: ["create"],
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export function benchPolicy(rounds: number, msPerRound: number): PolicyBenchResult {
  const engine = new PolicyEngine();
  engine.addTemplate("form-intake", ACTIONS);
  const policy = compileAppPolicy(engine, {
    appId: "app_bench",
    templateId: "form-intake",
    actions: ACTIONS,
    version: 1,
    blocks: ["owner-read", "owner-write", "app-read", "label-scoped"],
    customs: [],
  });
  if ("problems" in policy) throw new Error(JSON.stringify(policy.problems));
  // 64 different requests: owners, labels and principals vary, as records of a list do.
  const requests: CedarRequest[] = Array.from({ length: 64 }, (_, i) => ({
    principal: {
      sub: `user${i % 8}`,
      scopes: i % 3 === 0 ? ["read", "read:all"] : ["read"],
      labels: [i % 2 ? "team=hr" : "team=it"],
      roles: [],
      environment: "dev",
    },
    action: "read",
    resource: {
      id: `rec${i}`,
      owner: `user${(i * 5) % 8}`,
      labels: [i % 4 < 2 ? "team=hr" : "team=it"],
      state: "live",
    },
    app: { id: "app_bench", environment: "dev", template: "form-intake" },
  }));
  const run: Record<PolicyVariant, (r: CedarRequest) => unknown> = {
    unprepared: (r) => engine.authorizeUnprepared(policy.policies, r, false),
    preparsed: (r) => engine.authorizePreparedNoMemo(policy.setKey, r),
    memo: (r) => engine.authorize(policy.setKey, policy.version, r),
  };
  // The three must agree before their speed means anything.
  for (const r of requests) {
    const answers = new Set(Object.values(run).map((f) => JSON.stringify(f(r))));
    if (answers.size !== 1) throw new Error(`policy bench: variants disagree on ${r.resource.id}`);
  }
  const perRound: Record<PolicyVariant, number[]> = { unprepared: [], preparsed: [], memo: [] };
  const variants = Object.keys(run) as PolicyVariant[];
  for (let round = 0; round < rounds; round++) {
    const order = variants.map((_, k) => variants[(k + round) % variants.length] as PolicyVariant);
    for (const v of order) {
      const f = run[v];
      let n = 0;
      const start = performance.now();
      let now = start;
      while (now - start < msPerRound) {
        for (let k = 0; k < 16; k++) f(requests[(n + k) % requests.length] as CedarRequest);
        n += 16;
        now = performance.now();
      }
      perRound[v].push((n * 1000) / (now - start));
    }
  }
  const med = {
    unprepared: median(perRound.unprepared),
    preparsed: median(perRound.preparsed),
    memo: median(perRound.memo),
  };
  return { perRound, median: med, preparsedRatio: med.preparsed / med.unprepared };
}
