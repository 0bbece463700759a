import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import type {
  AppPolicyView,
  CustomPolicyView,
  ExplainRequest,
  ExplainResponse,
} from "@trellis/contracts";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { labelsToSet, setToLabels } from "../../lib/labels";
import type { AppsService, GovernedApp } from "../apps/apps.service";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { TokensService } from "../tokens/tokens.service";
import { compileAppPolicy, decide } from "./app-policy";
import { blockById } from "./blocks";
import type { PolicyEngine, Principal, RecordResource } from "./engine";
import { customPolicies } from "./policy.repo";
import { rowFilterSql } from "./row-filter";
import { parseSuite, runSuite } from "./suite";

interface Deps {
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  apps: AppsService;
  tokens: Pick<TokensService, "verify">;
  engine: PolicyEngine;
}

const toView = (c: Awaited<ReturnType<typeof customPolicies>>[number]): CustomPolicyView => ({
  id: c.id,
  effect: c.effect,
  cedar: c.cedar,
  status: c.status,
  created_at: c.created_at.toISOString(),
  created_by: c.created_by,
});

/**
 * An app's policies as the control plane manages them: chosen blocks, custom Cedar policies
 * (validated against the schema first; forbids apply at once, permits wait for a steward),
 * explain, and policy test suites. Every change bumps the app's governance version, which
 * every server hears (NOTIFY) and re-parses.
 */
export const policyService = ({ db, clock, audit, apps, tokens, engine }: Deps) => {
  async function governed(appId: string): Promise<GovernedApp> {
    const g = await apps.governedApp(appId);
    if (!g) throw new TrellisError("app_not_found");
    return g;
  }

  async function view(appId: string): Promise<AppPolicyView> {
    const g = await governed(appId);
    return {
      app_id: appId,
      version: g.govVersion,
      blocks: [...g.policy.blocks],
      custom_policies: (await customPolicies(db, appId)).map(toView),
      cedar: g.policy.policies,
      cedar_schema: engine.schemaText(g.template.summary.id),
    };
  }

  async function setBlocks(
    ctx: AuditContext,
    appId: string,
    blocks: string[],
  ): Promise<AppPolicyView> {
    const g = await governed(appId);
    const chosen = apps.checkBlocks(g.template, blocks);
    await db.transaction(async (tx) => {
      await apps.changeGovernance(tx, appId, { blocks: chosen });
      await audit.record(
        { ...ctx, policyIds: chosen },
        { action: "policy.update", resourceType: "app", resourceId: appId },
        tx,
      );
    });
    apps.invalidate(appId);
    return view(appId);
  }

  /** Parses one custom policy: exactly one statement, its effect, and validation problems. */
  function checkCustom(g: GovernedApp, id: string, text: string) {
    const parts = cedar.policySetTextToParts(text);
    if (parts.type !== "success") {
      throw new TrellisError(
        "policy_invalid",
        parts.errors.slice(0, 10).map((e) => ({ path: "/cedar", message: e.message })),
      );
    }
    if (parts.policies.length !== 1 || parts.policy_templates.length !== 0) {
      throw new TrellisError("policy_invalid", [
        { path: "/cedar", message: "give exactly one policy (no templates)" },
      ]);
    }
    const json = cedar.policyToJson(text);
    if (json.type !== "success") throw new TrellisError("policy_invalid");
    const problems = engine.check(g.template.summary.id, { ...g.policy.policies, [id]: text });
    if (problems.length > 0) {
      throw new TrellisError(
        "policy_invalid",
        problems.slice(0, 10).map((p) => ({ path: "/cedar", message: p.message })),
      );
    }
    return json.json.effect as "permit" | "forbid";
  }

  async function addCustom(
    ctx: AuditContext,
    appId: string,
    input: { id: string; cedar: string },
  ): Promise<{ policy: CustomPolicyView; approval_request_id: string | null }> {
    const g = await governed(appId);
    const effect = checkCustom(g, input.id, input.cedar);
    // A forbid can only narrow access: it applies at once. A permit could widen it: it waits
    // for a steward's approval (the approval workflow comes with the approvals issue).
    const status = effect === "forbid" ? "active" : "pending_approval";
    const now = clock.now();
    const approvalId = effect === "permit" ? newId("approval") : null;
    await db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `INSERT INTO trellis.custom_policies (app_id, id, effect, cedar, status, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [appId, input.id, effect, input.cedar, status, now, ctx.actorId ?? "unknown"],
      );
      if (rowCount === 0) throw new TrellisError("policy_exists");
      if (approvalId) {
        await tx.query(
          `INSERT INTO trellis.approval_requests (id, app_id, kind, reason, request, created_at, created_by)
           VALUES ($1, $2, 'custom_permit', $3, $4, $5, $6)`,
          [
            approvalId,
            appId,
            "a custom permit can widen access: a steward must approve it",
            JSON.stringify({ policy_id: input.id, cedar: input.cedar }),
            now,
            ctx.actorId ?? "unknown",
          ],
        );
      } else {
        await apps.changeGovernance(tx, appId, {});
      }
      await audit.record(
        { ...ctx, policyIds: [input.id] },
        { action: "policy.custom_add", resourceType: "policy", resourceId: input.id },
        tx,
      );
    });
    apps.invalidate(appId);
    const stored = (await customPolicies(db, appId)).find((c) => c.id === input.id);
    if (!stored) throw new TrellisError("internal");
    return { policy: toView(stored), approval_request_id: approvalId };
  }

  async function removeCustom(ctx: AuditContext, appId: string, id: string): Promise<void> {
    await governed(appId);
    await db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE trellis.custom_policies SET status = 'removed'
          WHERE app_id = $1 AND id = $2 AND status <> 'removed'`,
        [appId, id],
      );
      if (rowCount === 0) throw new TrellisError("not_found");
      await apps.changeGovernance(tx, appId, {});
      await audit.record(
        { ...ctx, policyIds: [id] },
        { action: "policy.custom_remove", resourceType: "policy", resourceId: id },
        tx,
      );
    });
    apps.invalidate(appId);
  }

  async function principalFrom(g: GovernedApp, req: ExplainRequest): Promise<Principal> {
    if (req.token) {
      const v = await tokens.verify(req.token, g.app.id);
      if (!v.ok)
        throw new TrellisError("invalid_request", [
          { path: "/token", message: `the token does not verify: ${v.code}` },
        ]);
      return {
        sub: v.claims.subject,
        scopes: [...v.claims.scopes].sort(),
        labels: v.claims.labels,
        roles: [],
        environment: v.claims.environment,
      };
    }
    const p = req.principal;
    if (!p) throw new TrellisError("invalid_request");
    return {
      sub: p.sub,
      scopes: [...new Set(p.scopes)].sort(),
      labels: labelsToSet(p.labels, "/principal/labels"),
      roles: p.roles,
      environment: p.environment ?? g.app.environment,
    };
  }

  async function resourceFrom(
    g: GovernedApp,
    req: ExplainRequest,
    principal: Principal,
  ): Promise<RecordResource | null> {
    if (req.resource) {
      return {
        id: "explain",
        owner: req.resource.owner,
        labels: labelsToSet(req.resource.labels, "/resource/labels"),
        reviewer: req.resource.reviewer ?? null,
        state: req.resource.state,
      };
    }
    if (req.record_id) {
      const r = g.template.records;
      // Identifiers come from the validated manifest (regex-checked), values are parameters.
      const { rows } = await db.query<{ owner: string; labels: string[]; reviewer: string | null }>(
        `SELECT ${r.owner} AS owner, ${r.labels} AS labels, ${r.reviewer ?? "NULL::text"} AS reviewer
           FROM ${r.table} WHERE app_id = $1 AND ${r.id ?? "id"}::text = $2`,
        [g.app.id, req.record_id],
      );
      const row = rows[0];
      if (!row) throw new TrellisError("not_found");
      return {
        id: req.record_id,
        owner: row.owner,
        labels: row.labels,
        reviewer: row.reviewer,
        state: "live",
      };
    }
    // A create needs no record: it is the one the principal would make.
    if (g.policy.actions.creates.includes(req.action)) {
      return { id: "new", owner: principal.sub, labels: principal.labels, state: "live" };
    }
    return null;
  }

  async function explain(appId: string, req: ExplainRequest): Promise<ExplainResponse> {
    const g = await governed(appId);
    const actions = [...g.policy.actions.read, ...g.policy.actions.write];
    if (!actions.includes(req.action)) {
      throw new TrellisError("invalid_request", [
        { path: "/action", message: `must be one of: ${actions.join(", ")}` },
      ]);
    }
    const principal = await principalFrom(g, req);
    const resource = await resourceFrom(g, req, principal);
    const sqlFilter = rowFilterSql(
      g.policy,
      appId,
      g.app.environment,
      principal,
      req.action,
      g.template.records,
    );
    const principalView = { ...principal, labels: setToLabels(principal.labels) };
    const gatewayChecks = [...g.policy.customIds];
    if (!resource) {
      return {
        decision: "deny",
        determining_policies: [],
        reasons: [
          `"${req.action}" acts on an existing record: give resource or record_id for a decision; sql_filter shows which records it would reach`,
        ],
        errors: [],
        sql_filter: sqlFilter,
        gateway_checks: gatewayChecks,
        principal: principalView,
        resource: null,
      };
    }
    const d = decide(engine, g.policy, {
      principal,
      action: req.action,
      resource,
      app: { id: appId, environment: g.app.environment, template: g.template.summary.id },
    });
    const effectOf = (id: string) =>
      blockById(id.split(".")[0] ?? "")?.effect ??
      (g.policy.policies[id]?.trimStart().startsWith("forbid") ? "forbid" : "permit");
    const determining = d.policyIds.map((id) => ({
      id,
      effect: effectOf(id),
      cedar: g.policy.policies[id] ?? "",
    }));
    const reasons: string[] = [];
    if (d.decision === "allow") {
      reasons.push(`allowed by ${d.policyIds.join(", ")}`);
    } else if (determining.length > 0) {
      reasons.push(`forbidden by ${d.policyIds.join(", ")}`);
    } else {
      reasons.push(
        `no policy permits "${req.action}" for this principal on this record (Cedar denies unless a policy permits)`,
      );
    }
    const onExisting =
      g.policy.actions.write.includes(req.action) && !g.policy.actions.creates.includes(req.action);
    if (onExisting)
      reasons.push(
        `"${req.action}" on an existing record also needs the record to be readable (Trellis rule, enforced by the database too)`,
      );
    return {
      decision: d.decision,
      determining_policies: determining,
      reasons,
      errors: d.errors,
      sql_filter: sqlFilter,
      gateway_checks: gatewayChecks,
      principal: principalView,
      resource: { ...resource, labels: setToLabels(resource.labels) },
    };
  }

  async function test(appId: string, yamlText: string) {
    const g = await governed(appId);
    const suite = parseSuite(yamlText);
    return runSuite(
      engine,
      g.policy,
      { id: appId, environment: g.app.environment, template: g.template.summary.id },
      suite,
    );
  }

  async function approvals(appId: string) {
    await governed(appId);
    const { rows } = await db.query<{
      id: string;
      app_id: string;
      kind: "token_renewal" | "custom_permit";
      status: "pending" | "approved" | "rejected";
      reason: string;
      request: Record<string, unknown>;
      created_at: Date;
      created_by: string;
    }>(
      `SELECT id, app_id, kind, status, reason, request, created_at, created_by
         FROM trellis.approval_requests WHERE app_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500`,
      [appId],
    );
    return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
  }

  return { view, setBlocks, addCustom, removeCustom, explain, test, approvals };
};

export type PolicyService = ReturnType<typeof policyService>;

/** Compiles a block set on its own (block suites in tests, the benchmark). */
export { compileAppPolicy };
