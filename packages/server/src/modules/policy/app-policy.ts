import { type BlockId, blockById, type TemplateActions } from "./blocks";
import type { CedarRequest, Decision, PolicyEngine, PolicyProblem } from "./engine";

export interface CustomPolicy {
  id: string;
  effect: "permit" | "forbid";
  cedar: string;
}

/** An app's policies as the gateway uses them: compiled once per version, then cached. */
export interface AppPolicy {
  setKey: string;
  version: number;
  templateId: string;
  actions: TemplateActions;
  blocks: readonly BlockId[];
  /** The blocks separated by spaces: the `trellis.blocks` claim row-level security reads. */
  blockClaim: string;
  /** Every policy of the set, by id: the blocks' and the active custom ones. */
  policies: Record<string, string>;
  /** Active custom policies: Cedar checks them at the gateway, record by record. */
  customIds: readonly string[];
  /** The policies that bear on reads: a list's row filter is made of these. */
  readPolicyIds: readonly string[];
}

/** The Cedar policies of a set of blocks for a template's actions. */
export function blockPolicies(
  blocks: readonly string[],
  actions: TemplateActions,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of blocks) {
    const block = blockById(id);
    if (!block) throw new Error(`unknown policy block ${id}`);
    Object.assign(out, block.cedar(actions));
  }
  return out;
}

/**
 * Builds and preparses an app's policy set. Returns the problems instead when the set does
 * not validate (the caller keeps the previous set answering).
 */
export function compileAppPolicy(
  engine: PolicyEngine,
  input: {
    appId: string;
    templateId: string;
    actions: TemplateActions;
    version: number;
    blocks: readonly BlockId[];
    customs: readonly CustomPolicy[];
  },
): AppPolicy | { problems: PolicyProblem[] } {
  const policies = blockPolicies(input.blocks, input.actions);
  for (const c of input.customs) policies[c.id] = c.cedar;
  const problems = engine.check(input.templateId, policies);
  if (problems.length > 0) return { problems };
  const setKey = `app:${input.appId}`;
  engine.load(setKey, policies);
  const readPolicyIds = Object.keys(policies)
    .filter((id) => {
      const block = blockById(id.split(".")[0] ?? "");
      // Block policies that speak of reads: the read permits and the forbids on every action
      // (per-action policies, `block.action`, are all about writes).
      return block
        ? !id.includes(".") && block.id !== "read-only" && block.id !== "prod-writes-only"
        : true;
    })
    .sort();
  return {
    setKey,
    version: input.version,
    templateId: input.templateId,
    actions: input.actions,
    blocks: input.blocks,
    blockClaim: input.blocks.join(" "),
    policies,
    customIds: input.customs.map((c) => c.id),
    readPolicyIds,
  };
}

/**
 * The gateway's decision for one action on one record, with Trellis's one built-in rule: an
 * action on an existing record (not a create) also needs the record to be readable. PostgreSQL
 * applies the read policy to UPDATE and DELETE the same way, so both sides agree.
 */
export function decide(engine: PolicyEngine, policy: AppPolicy, req: CedarRequest): Decision {
  const d = engine.authorize(policy.setKey, policy.version, req);
  const onExisting =
    policy.actions.write.includes(req.action) && !policy.actions.creates.includes(req.action);
  const readAction = policy.actions.read[0];
  if (!onExisting || !readAction) return d;
  const r = engine.authorize(policy.setKey, policy.version, { ...req, action: readAction });
  if (d.decision === "allow" && r.decision === "allow") {
    return {
      decision: "allow",
      policyIds: [...new Set([...d.policyIds, ...r.policyIds])].sort(),
      errors: [...d.errors, ...r.errors],
    };
  }
  // Deny: name what denied (the forbids that matched, or nothing when no permit matched).
  const denying = [d, r].filter((x) => x.decision === "deny");
  return {
    decision: "deny",
    policyIds: [...new Set(denying.flatMap((x) => x.policyIds))].sort(),
    errors: [...d.errors, ...r.errors],
  };
}
