import { setFlagsFromString } from "node:v8";
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";

// Node 20's V8 crashes the process ("Fatal error: unreachable code" in the deoptimizer) when
// TurboFan has inlined a JS-to-Wasm call and the calling frame is deoptimized while Cedar runs
// (Cedar's glue calls JSON.parse/stringify back in JS, which can invalidate optimized code).
// Reproduced within seconds under load (bench/stress-cedar.ts); turning off that one inlining
// stops it. Set before any code calls Cedar, so no optimized frame ever inlines the call.
setFlagsFromString("--no-turbo-inline-js-wasm-calls");

import type { TemplateActions } from "./blocks";

/**
 * Cedar, wrapped: one schema per template, one preparsed policy set per app (re-parsed only
 * when the app's policies change), and a bounded memo of decisions. Cedar is deterministic, so
 * a decision is a pure function of (policy set version, request); the memo key is the whole
 * request, so a hit is exactly the answer Cedar would give (measured: a preparsed evaluation
 * costs ~110 µs through the wasm boundary, a memo hit well under 1 µs).
 */

export interface Principal {
  sub: string;
  scopes: readonly string[];
  /** "key=value" strings, sorted. */
  labels: readonly string[];
  roles: readonly string[];
  environment: string;
}

export interface RecordResource {
  id: string;
  owner: string;
  labels: readonly string[];
  reviewer?: string | null;
  state: string;
}

export interface CedarRequest {
  principal: Principal;
  action: string;
  resource: RecordResource;
  app: { id: string; environment: string; template: string };
}

export interface Decision {
  decision: "allow" | "deny";
  /** The policies that determined it: the satisfied permits (allow) or forbids (deny). */
  policyIds: string[];
  errors: string[];
}

export interface PolicyProblem {
  policyId: string | null;
  message: string;
}

/** The Cedar schema for one template's actions. */
export function cedarSchema(actions: TemplateActions): string {
  const list = (xs: readonly string[]) => xs.map((x) => JSON.stringify(x)).join(", ");
  const applies = "appliesTo { principal: [Subject], resource: [Record] }";
  return `namespace Trellis {
  entity App = { environment: String, template: String };
  entity Subject = {
    sub: String, scopes: Set<String>, labels: Set<String>, roles: Set<String>, environment: String
  };
  entity Record in [App] = {
    owner: String, labels: Set<String>, reviewer?: String, state: String, environment: String
  };
  action "any-read", "any-write";
  ${actions.read.length ? `action ${list(actions.read)} in ["any-read"] ${applies};` : ""}
  ${actions.write.length ? `action ${list(actions.write)} in ["any-write"] ${applies};` : ""}
}`;
}

const messages = (errs: ReadonlyArray<{ message: string }>) => errs.map((e) => e.message);

const MEMO_MAX = 20_000;

export class PolicyEngine {
  private readonly schemas = new Map<string, string>(); // template id → schema text
  private readonly memo = new Map<string, Decision>();

  /** Registers a template's schema (parsed once). */
  addTemplate(templateId: string, actions: TemplateActions): void {
    const text = cedarSchema(actions);
    const parsed = cedar.preparseSchema(`schema:${templateId}`, text);
    if (parsed.type !== "success") {
      throw new Error(`Cedar schema of ${templateId}: ${messages(parsed.errors).join("; ")}`);
    }
    this.schemas.set(templateId, text);
  }

  schemaText(templateId: string): string {
    const s = this.schemas.get(templateId);
    if (!s) throw new Error(`no Cedar schema for template ${templateId}`);
    return s;
  }

  /** Parse and validate policies against the template's schema (strict mode). */
  check(templateId: string, policies: Record<string, string>): PolicyProblem[] {
    const parsed = cedar.checkParsePolicySet({ staticPolicies: policies });
    if (parsed.type !== "success")
      return parsed.errors.map((e) => ({ policyId: null, message: e.message }));
    const v = cedar.validate({
      schema: this.schemaText(templateId),
      policies: { staticPolicies: policies },
      validationSettings: { mode: "strict" },
    });
    if (v.type !== "success") return v.errors.map((e) => ({ policyId: null, message: e.message }));
    return v.validationErrors.map((e) => ({ policyId: e.policyId, message: e.error.message }));
  }

  /**
   * Preparses an app's policy set under `setKey` (replacing the previous one). Validate first
   * with `check`: this throws on a set that does not parse.
   */
  load(setKey: string, policies: Record<string, string>): void {
    const r = cedar.preparsePolicySet(setKey, { staticPolicies: policies });
    if (r.type !== "success") throw new Error(messages(r.errors).join("; "));
  }

  /** Decides with a preparsed set; `version` must change whenever the set does. */
  authorize(setKey: string, version: number, req: CedarRequest): Decision {
    const key = `${setKey}\u0000${version}\u0000${JSON.stringify(req)}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const answer = cedar.statefulIsAuthorized({
      ...toCall(req),
      preparsedPolicySetId: setKey,
      preparsedSchemaName: `schema:${req.app.template}`,
      validateRequest: false,
    });
    const decision = toDecision(answer);
    if (this.memo.size >= MEMO_MAX) this.memo.delete(this.memo.keys().next().value as string);
    this.memo.set(key, decision);
    return decision;
  }

  /**
   * Decides by parsing everything on this call (no preparsed set, no memo): `explain` for
   * input a person typed, and the benchmark's baseline.
   */
  authorizeUnprepared(
    policies: Record<string, string>,
    req: CedarRequest,
    validate = true,
  ): Decision {
    const answer = cedar.isAuthorized({
      ...toCall(req),
      policies: { staticPolicies: policies },
      schema: this.schemaText(req.app.template),
      validateRequest: validate,
    });
    return toDecision(answer);
  }

  /** Uncached preparsed evaluation (benchmarks only). */
  authorizePreparedNoMemo(setKey: string, req: CedarRequest): Decision {
    return toDecision(
      cedar.statefulIsAuthorized({
        ...toCall(req),
        preparsedPolicySetId: setKey,
        preparsedSchemaName: `schema:${req.app.template}`,
        validateRequest: false,
      }),
    );
  }
}

function toCall(req: CedarRequest) {
  const { principal: p, resource: r, app } = req;
  const appUid = { type: "Trellis::App", id: app.id };
  const recordAttrs: Record<string, cedar.CedarValueJson> = {
    owner: r.owner,
    labels: [...r.labels],
    state: r.state,
    environment: app.environment,
  };
  if (r.reviewer != null) recordAttrs.reviewer = r.reviewer;
  return {
    principal: { type: "Trellis::Subject", id: p.sub },
    action: { type: "Trellis::Action", id: req.action },
    resource: { type: "Trellis::Record", id: r.id },
    context: {},
    entities: [
      {
        uid: { type: "Trellis::Subject", id: p.sub },
        attrs: {
          sub: p.sub,
          scopes: [...p.scopes],
          labels: [...p.labels],
          roles: [...p.roles],
          environment: p.environment,
        },
        parents: [],
      },
      {
        uid: { type: "Trellis::Record", id: r.id },
        attrs: recordAttrs,
        parents: [appUid],
      },
      {
        uid: appUid,
        attrs: { environment: app.environment, template: app.template },
        parents: [],
      },
    ],
  };
}

function toDecision(answer: cedar.AuthorizationAnswer): Decision {
  if (answer.type !== "success") {
    // A request Cedar cannot evaluate is a denial, never an allow.
    return { decision: "deny", policyIds: [], errors: messages(answer.errors) };
  }
  const { decision, diagnostics } = answer.response;
  return {
    decision: decision === "allow" ? "allow" : "deny",
    policyIds: [...diagnostics.reason].sort(),
    errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
  };
}
