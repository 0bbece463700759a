import type { RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { TrellisError } from "../lib/errors";
import { newId } from "../lib/ids";
import { decide } from "../modules/policy/app-policy";
import type { Decision, PolicyEngine } from "../modules/policy/engine";
import type { GatewayCtx } from "./form-intake.repo";
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
export function governedHelpers({ clock, engine }: { clock: Clock; engine: PolicyEngine }) {
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

  return { governedOf, ctxOf, decideOn, newRecord };
}
