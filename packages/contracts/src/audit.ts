import { z } from "zod";

/**
 * The closed vocabulary of audit actions, `resource.verb`. Adding an action means adding it
 * here; the database refuses nothing, but the server only writes names from this list.
 */
export const AUDIT_ACTIONS = [
  "template.list",
  "template.get",
  "template.export",
  "template.submit",
  "template.list_custom",
  "template.approve",
  "template.reject",
  "admin.create",
  "admin.list",
  "admin.revoke",
  "app.export",
  "app.import",
  "app.upgrade",
  "app.create",
  "app.get",
  "app.pause",
  "app.resume",
  "policy.get",
  "policy.update",
  "policy.custom_add",
  "policy.custom_remove",
  "policy.explain",
  "policy.test",
  "approval.list",
  "token.create",
  "token.list",
  "token.revoke",
  "token.revoke_all",
  "token.renew",
  "key.rotate",
  "audit.list",
  "audit.export",
  "audit.prune",
  "audit.erase",
  "audit.proof",
  "audit.consistency",
  "submission.create",
  "submission.list",
  "submission.get",
  "submission.delete",
  "item.create",
  "item.list",
  "item.get",
  "item.update",
  "item.delete",
  "request.create",
  "request.list",
  "request.get",
  "request.transition",
  "entry.put",
  "entry.get",
  "booking.create",
  "booking.list",
  "booking.get",
  "booking.cancel",
  "event.append",
  "event.list",
  "route.unmatched",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AUDIT_OUTCOMES = ["allowed", "denied", "error"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export const ACTOR_ROLES = ["admin", "app_user", "anonymous"] as const;
export type ActorRole = (typeof ACTOR_ROLES)[number];

export const AuditEvent = z.object({
  seq: z.number().int(),
  event_id: z.string(),
  timestamp: z.string(),
  actor_id: z.string().nullable(),
  actor_role: z.enum(ACTOR_ROLES),
  action: z.enum(AUDIT_ACTIONS),
  resource_type: z.string(),
  resource_id: z.string().nullable(),
  app_id: z.string().nullable(),
  token_id: z.string().nullable(),
  /** The policies that determined the decision (Cedar policy ids; empty when none applied). */
  policy_ids: z.array(z.string()),
  outcome: z.enum(AUDIT_OUTCOMES),
  error_code: z.string().nullable(),
  request_id: z.string(),
  /** What changed: a transition's `{state: {from, to}}`, an upgrade's steps; null otherwise. */
  diff: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEvent = z.infer<typeof AuditEvent>;
