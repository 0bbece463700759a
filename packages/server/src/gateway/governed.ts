import type { AuditAction } from "@trellis/contracts";
import { auditContext, type RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { encodeCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newId } from "../lib/ids";
import type { AuditService } from "../modules/audit/audit.service";
import { decide } from "../modules/policy/app-policy";
import type { Decision, PolicyEngine } from "../modules/policy/engine";
import type { GatewayCtx } from "./gateway-ctx";
import { principalOf } from "./principal";

/** A record as Cedar sees it: who owns it, its labels, its assigned reviewer. */
export interface RecordFacts {
  id: string;
  owner: string;
  labels: readonly string[];
  reviewer: string | null;
  /** Where a record with a state machine is (approval-queue); "live" for the others. */
  state?: string;
}

/**
 * What every template's gateway routes share once the auth hook has run: the context passed to
 * the `trellis.gw_*` functions (claims for row-level security plus the audit event's fields),
 * and Cedar's decision on one record as this caller.
 */
export function governedHelpers({
  clock,
  engine,
  audit,
}: {
  clock: Clock;
  engine: PolicyEngine;
  audit?: Pick<AuditService, "record">;
}) {
  const governedOf = (c: RequestContext) => {
    const { claims, governed } = c;
    if (!claims || !governed) throw new TrellisError("auth_required"); // unreachable: the hook sets both
    return { claims, governed };
  };

  const ctxOf = (c: RequestContext, policyIds: readonly string[] = []): GatewayCtx => {
    const { claims, governed } = governedOf(c);
    return {
      app_id: claims.appId,
      sub: claims.subject,
      scopes: claims.scopeString,
      labels: claims.labelString,
      env: claims.environment,
      app_env: governed.app.environment,
      blocks: governed.policy.blockClaim,
      policy_ids: policyIds.join(" "),
      token_id: claims.tokenId,
      event_id: newId("event"),
      request_id: c.requestId,
      at: clock.now().toISOString(),
    };
  };

  const decideOn = (c: RequestContext, action: string, rec: RecordFacts): Decision => {
    const { claims, governed } = governedOf(c);
    return decide(engine, governed.policy, {
      principal: principalOf(claims),
      action,
      resource: { ...rec, state: rec.state ?? "live" },
      app: {
        id: governed.app.id,
        environment: governed.app.environment,
        template: governed.template.summary.id,
      },
    });
  };

  /** The record a create would make: the caller's, with the caller's labels. */
  const newRecord = (c: RequestContext, reviewer: string | null = null): RecordFacts => {
    const { claims } = governedOf(c);
    // No id as far as policy goes: a constant keeps the decision memo hitting for every create
    // of the same caller and shape.
    return { id: "new", owner: claims.subject, labels: claims.labels, reviewer };
  };

  /**
   * Cedar's decision on a record RLS let this caller see: an allowed action returns its
   * policies; a denied read is hidden like RLS hides rows (not_found), a denied change of a
   * visible record is policy_denied. The request's audit event names the policies either way.
   */
  const decideFound = (c: RequestContext, action: string, rec: RecordFacts): readonly string[] => {
    const d = decideOn(c, action, rec);
    c.policyIds = d.policyIds;
    if (d.decision !== "allow")
      throw new TrellisError(action === "read" ? "not_found" : "policy_denied");
    return d.policyIds;
  };

  /**
   * One page of a list, newest first: `fetch` asks for limit + 1 rows under RLS (the extra one
   * says whether there is a next page); active custom policies narrow the page through Cedar;
   * the list is audited (group commit) before it is answered.
   */
  const listPage = async <R extends { facts: RecordFacts }, T>(
    c: RequestContext,
    o: {
      limit: number;
      action: AuditAction;
      resourceType: string;
      fetch: (ctx: GatewayCtx, limitPlusOne: number) => Promise<R[]>;
      item: (r: R) => T;
    },
  ): Promise<{ items: T[]; next_cursor: string | null }> => {
    const { governed } = governedOf(c);
    c.policyIds = governed.policy.readPolicyIds;
    const rows = await o.fetch(ctxOf(c), o.limit + 1);
    const more = rows.length > o.limit;
    let page = more ? rows.slice(0, o.limit) : rows;
    const cursorId = more ? page.at(-1)?.facts.id : undefined;
    if (governed.policy.customIds.length > 0)
      page = page.filter((r) => decideOn(c, "read", r.facts).decision === "allow");
    await audit?.record(auditContext(c), { action: o.action, resourceType: o.resourceType });
    c.audited = true;
    return {
      items: page.map(o.item),
      next_cursor: cursorId ? encodeCursor({ id: cursorId }) : null,
    };
  };

  /** A read of one record, audited (group commit) before it is answered. */
  const auditedRead = async (c: RequestContext, action: AuditAction, type: string, id: string) => {
    await audit?.record(auditContext(c), { action, resourceType: type, resourceId: id });
    c.audited = true;
  };

  return { governedOf, ctxOf, decideOn, newRecord, decideFound, listPage, auditedRead };
}
