import { z } from "zod";
import { AUDIT_ACTIONS, AUDIT_OUTCOMES, AuditEvent } from "./audit";
import { ERROR_CODES, type ErrorCode } from "./errors";
import { idPattern } from "./ids";

/** Bounds every list endpoint shares. */
export const PAGE = { defaultLimit: 50, maxLimit: 200 } as const;

const text = (max: number) => z.string().min(1).max(max);
const limit = z.coerce.number().int().min(1).max(PAGE.maxLimit).default(PAGE.defaultLimit);
const cursor = z.string().min(1).max(200).optional();
/** The last instant JavaScript's `toISOString` writes with a four-digit year. */
const LAST_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    request_id: z.string(),
    /** Present for payload and request validation failures: where and what, never internals. */
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    /** With transition_not_allowed: the states this caller may move the record to from here. */
    allowed: z.array(z.string()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

// ── catalog ──────────────────────────────────────────────────────────────────────────────
export const TemplateScope = z.object({ name: z.string(), description: z.string() });
export const TemplateSummary = z.object({
  id: z.string(),
  version: z.number().int(),
  title: z.string(),
  description: z.string(),
  retention_days_default: z.number().int(),
  scopes: z.array(TemplateScope),
  resources: z.array(z.object({ name: z.string(), operations: z.array(z.string()) })),
  /** The built-in template whose tables and API it uses: its own id unless it is custom. */
  base: z.string(),
  /** Custom templates: who approved the version on offer. */
  approved_by: z.string().optional(),
});
export type TemplateSummary = z.infer<typeof TemplateSummary>;
export const TemplateList = z.object({ items: z.array(TemplateSummary) });

export const TemplateParams = z.object({ id: z.string().regex(/^[a-z][a-z0-9-]{1,40}$/) });

/** One template in full: its manifest, the versions on offer, and who-sees-what in words. */
export const TemplateDetail = z.object({
  summary: TemplateSummary,
  manifest: z.record(z.string(), z.unknown()),
  versions: z.array(z.number().int()),
  /** Plain words: what it stores, how long, and who can see and change what by default. */
  plain_summary: z.array(z.string()),
});
export type TemplateDetail = z.infer<typeof TemplateDetail>;

// ── export and import ────────────────────────────────────────────────────────────────────
/** `GET /admin/v1/templates/:id/export`: everything another instance needs to judge a template. */
export const TemplateExport = z.object({
  format: z.literal("trellis.template-export/1"),
  id: z.string(),
  version: z.number().int(),
  retention_days_default: z.number().int(),
  manifest: z.record(z.string(), z.unknown()),
  /** The JSON Schema every manifest follows. */
  manifest_schema: z.record(z.string(), z.unknown()),
  /** The template's SQL migrations in order, each with its SHA-256 (as the server records it). */
  ddl: z.array(z.object({ name: z.string(), sha256: z.string(), sql: z.string() })),
  /** Every policy block this template can use, with its Cedar for the template's actions. */
  policy_blocks: z.array(
    z.object({
      id: z.string(),
      title: z.string(),
      summary: z.string(),
      effect: z.enum(["permit", "forbid"]),
      default: z.boolean(),
      cedar: z.record(z.string(), z.string()),
      sql: z.string(),
    }),
  ),
  cedar_schema: z.string(),
});
export type TemplateExport = z.infer<typeof TemplateExport>;

/** What `POST /admin/v1/apps/import` did: the app, the rows per table, the verified hash. */
export const ImportResult = z.object({
  app_id: z.string(),
  template: z.string(),
  template_version: z.number().int(),
  rows: z.record(z.string(), z.number().int()),
  sha256: z.string(),
  data_sha256: z.string(),
});
export type ImportResult = z.infer<typeof ImportResult>;

// ── template upgrades ───────────────────────────────────────────────────────────────────
export const UpgradeRequest = z.strictObject({
  /** Default: the template's current version. */
  to_version: z.number().int().min(2).optional(),
  /** true (default): run every step in a transaction that is rolled back, and report. */
  dry_run: z.boolean().default(true),
  /** For the real run: the `plan` a dry run returned (proof it was seen, and still current). */
  confirm: z.string().max(100).optional(),
});
export type UpgradeRequest = z.input<typeof UpgradeRequest>;

export const UpgradeReport = z.object({
  app_id: z.string(),
  template: z.string(),
  from_version: z.number().int(),
  to_version: z.number().int(),
  dry_run: z.boolean(),
  /** What the new versions change, in plain words, and each step with the rows it touches(ed). */
  summaries: z.array(z.string()),
  steps: z.array(
    z.object({ version: z.number().int(), description: z.string(), rows: z.number().int() }),
  ),
  /** Pass back as `confirm` to run it for real. */
  plan: z.string(),
});
export type UpgradeReport = z.infer<typeof UpgradeReport>;

// ── people on the control plane ─────────────────────────────────────────────────────────
export const ADMIN_ROLES = ["admin", "steward"] as const;
export const AdminRole = z.enum(ADMIN_ROLES);
export type AdminRole = z.infer<typeof AdminRole>;

export const CreateAdminRequest = z.strictObject({
  /** Who this credential is for, e.g. "Ana (platform team)". */
  name: text(100),
  roles: z.array(AdminRole).min(1).max(2),
});
export const AdminView = z.object({
  id: z.string(),
  name: z.string().nullable(),
  roles: z.array(AdminRole),
  created_at: z.string(),
  created_by: z.string().nullable(),
  revoked_at: z.string().nullable(),
});
export type AdminView = z.infer<typeof AdminView>;
/** The new credential: `token` is shown this once, stored only as its SHA-256. */
export const AdminCreated = AdminView.extend({ token: z.string() });
export type AdminCreated = z.infer<typeof AdminCreated>;
export const AdminList = z.object({ items: z.array(AdminView) });
export type AdminList = z.infer<typeof AdminList>;
export const AdminParams = z.object({ id: z.string().regex(idPattern("admin")) });

// ── custom templates ────────────────────────────────────────────────────────────────────
/**
 * A custom template: a named variant of a built-in template (same tables, scopes and API) with
 * its own words, retention, default policy blocks and default payload schema. No SQL: it is
 * safe by construction; what a steward judges is who sees what and for how long.
 */
export const SubmitCustomTemplateRequest = z.strictObject({
  id: z.string().regex(/^[a-z][a-z0-9-]{1,40}$/, "lowercase letters, digits and -, from a letter"),
  /** The built-in template it is made from (e.g. directory). */
  base: text(64),
  title: text(100),
  /** Plain language: what it stores and who can see it. */
  description: z.string().min(20).max(2000),
  retention_days_default: z.number().int().min(1).max(3650).optional(),
  default_policy_blocks: z.array(text(40)).min(1).max(20).optional(),
  /** The payload schema apps get when they do not bring their own. */
  payload_schema: z.record(z.string(), z.unknown()).optional(),
});
export type SubmitCustomTemplateRequest = z.infer<typeof SubmitCustomTemplateRequest>;

export const CUSTOM_TEMPLATE_STATUSES = ["draft", "approved", "rejected"] as const;
export const CustomTemplateVersion = z.object({
  id: z.string(),
  version: z.number().int(),
  base: z.string(),
  status: z.enum(CUSTOM_TEMPLATE_STATUSES),
  definition: SubmitCustomTemplateRequest,
  submitted_by: z.string(),
  submitted_at: z.string(),
  decided_by: z.string().nullable(),
  decided_at: z.string().nullable(),
  decision_note: z.string().nullable(),
});
export type CustomTemplateVersion = z.infer<typeof CustomTemplateVersion>;
export const CustomTemplateList = z.object({ items: z.array(CustomTemplateVersion) });
export type CustomTemplateList = z.infer<typeof CustomTemplateList>;
export const CustomTemplateParams = z.object({
  id: z.string().regex(/^[a-z][a-z0-9-]{1,40}$/),
  version: z.coerce.number().int().min(1).max(10000),
});
export const DecideCustomTemplateRequest = z.strictObject({
  note: z.string().max(1000).optional(),
});

export const ENVIRONMENTS = ["dev", "staging", "prod"] as const;
export const Environment = z.enum(ENVIRONMENTS);
export type Environment = z.infer<typeof Environment>;

// ── apps ─────────────────────────────────────────────────────────────────────────────────
export const AppId = z.string().regex(idPattern("app"), "must be an app id (app_…)");
export const AppParams = z.object({ app: AppId });

export const CreateAppRequest = z.strictObject({
  name: text(100),
  template: text(64),
  owners: z.array(text(200)).min(1).max(20),
  /**
   * The creator's fields, as a JSON Schema in Trellis's safe subset (see the README). Optional
   * only for a custom template that brings a default.
   */
  payload_schema: z.record(z.string(), z.unknown()).optional(),
  retention_days: z.number().int().min(1).max(3650).optional(),
  /** dev (default), staging or prod: prod tokens live shorter; blocks can key on it. */
  environment: Environment.optional(),
  /** Policy block ids; default: the template's default set. */
  policy_blocks: z.array(text(40)).min(1).max(20).optional(),
});
export type CreateAppRequest = z.infer<typeof CreateAppRequest>;

export const App = z.object({
  id: z.string(),
  name: z.string(),
  template: z.string(),
  template_version: z.number().int(),
  owners: z.array(z.string()),
  payload_schema: z.record(z.string(), z.unknown()),
  retention_days: z.number().int(),
  status: z.enum(["active", "paused", "retired"]),
  environment: Environment,
  policy_blocks: z.array(z.string()),
  created_at: z.string(),
});
export type App = z.infer<typeof App>;

// ── tokens ───────────────────────────────────────────────────────────────────────────────
export const CreateTokenRequest = z.strictObject({
  subject: text(200),
  scopes: z.array(text(64)).min(1).max(16),
  /** Checked against the server's configured bounds (ttl_out_of_range); a week is the hard ceiling. */
  ttl_seconds: z.number().int().positive().max(604_800).optional(),
  /** Row labels, e.g. {"team": "hr"}: the label-scoped block matches them against records. */
  labels: z.record(z.string().max(64), z.string().max(64)).optional(),
  /** Default: the app's environment. The longest lifetime depends on it. */
  environment: Environment.optional(),
});
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export const TokenIssued = z.object({
  token: z.string(),
  token_id: z.string(),
  subject: z.string(),
  scopes: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  environment: Environment,
  expires_at: z.string(),
  renewed_from: z.string().optional(),
});
export type TokenIssued = z.infer<typeof TokenIssued>;

export const TokenParams = z.object({ app: AppId, token_id: z.string().regex(idPattern("token")) });

/** A token as the control plane lists it: never the token itself. */
export const TokenInfo = z.object({
  token_id: z.string(),
  subject: z.string(),
  scopes: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  environment: Environment,
  issued_at: z.string(),
  expires_at: z.string(),
  revoked_at: z.string().nullable(),
  status: z.enum(["active", "expired", "revoked"]),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
export const TokenList = z.object({ items: z.array(TokenInfo) });
export type TokenList = z.infer<typeof TokenList>;

/** Renewal: the same subject, labels and environment; by default the same scopes. */
export const RenewTokenRequest = z.strictObject({
  scopes: z.array(text(64)).min(1).max(16).optional(),
  ttl_seconds: z.number().int().positive().max(604_800).optional(),
});
export type RenewTokenRequest = z.infer<typeof RenewTokenRequest>;

/** 202: the renewal asked for more than policy allows and waits for approval. */
export const ApprovalPending = z.object({
  approval_request_id: z.string(),
  status: z.literal("pending"),
  reason: z.string(),
});
export type ApprovalPending = z.infer<typeof ApprovalPending>;

export const ApprovalRequest = z.object({
  id: z.string(),
  app_id: z.string(),
  kind: z.enum(["token_renewal", "custom_permit"]),
  status: z.enum(["pending", "approved", "rejected"]),
  reason: z.string(),
  request: z.record(z.string(), z.unknown()),
  created_at: z.string(),
  created_by: z.string(),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequest>;
export const ApprovalRequestList = z.object({ items: z.array(ApprovalRequest) });
export type ApprovalRequestList = z.infer<typeof ApprovalRequestList>;

/** A renewal either issues a token (201) or files an approval request (202). */
export const RenewResult = z.union([TokenIssued, ApprovalPending]);
export type RenewResult = z.infer<typeof RenewResult>;

// ── policy ───────────────────────────────────────────────────────────────────────────────
export const PolicyBlock = z.object({
  id: z.string(),
  effect: z.enum(["permit", "forbid"]),
  title: z.string(),
  summary: z.string(),
  cedar: z.record(z.string(), z.string()),
  sql: z.string(),
});
export const PolicyBlockList = z.object({ items: z.array(PolicyBlock) });
export type PolicyBlockList = z.infer<typeof PolicyBlockList>;

export const CustomPolicyView = z.object({
  id: z.string(),
  effect: z.enum(["permit", "forbid"]),
  cedar: z.string(),
  status: z.enum(["active", "pending_approval", "removed"]),
  created_at: z.string(),
  created_by: z.string(),
});
export type CustomPolicyView = z.infer<typeof CustomPolicyView>;

export const AppPolicyView = z.object({
  app_id: z.string(),
  version: z.number().int(),
  blocks: z.array(z.string()),
  custom_policies: z.array(CustomPolicyView),
  /** Every active policy of the set, by id, as Cedar evaluates it. */
  cedar: z.record(z.string(), z.string()),
  cedar_schema: z.string(),
});
export type AppPolicyView = z.infer<typeof AppPolicyView>;

export const SetPolicyBlocksRequest = z.strictObject({
  blocks: z.array(text(40)).min(1).max(20),
});
export const AddCustomPolicyRequest = z.strictObject({
  /** `custom.<name>`: lowercase letters, digits and dashes. */
  id: z.string().regex(/^custom\.[a-z0-9][a-z0-9-]{0,47}$/, "must look like custom.my-rule"),
  cedar: z.string().min(1).max(10_000),
});
export const CustomPolicyParams = z.object({
  app: AppId,
  policy_id: z.string().regex(/^custom\.[a-z0-9][a-z0-9-]{0,47}$/),
});
export const AddCustomPolicyResult = z.object({
  policy: CustomPolicyView,
  approval_request_id: z.string().nullable(),
});
export type AddCustomPolicyResult = z.infer<typeof AddCustomPolicyResult>;

const Labels = z.record(z.string().max(64), z.string().max(64));
export const ExplainPrincipal = z.strictObject({
  sub: text(200),
  scopes: z.array(text(64)).max(16).default([]),
  labels: Labels.default({}),
  roles: z.array(text(64)).max(16).default([]),
  environment: Environment.optional(),
});
export const ExplainResource = z.strictObject({
  owner: text(200),
  labels: Labels.default({}),
  reviewer: text(200).nullable().optional(),
  state: z.string().max(40).default("live"),
});
export const ExplainRequest = z
  .strictObject({
    principal: ExplainPrincipal.optional(),
    token: z.string().max(4096).optional(),
    action: text(64),
    resource: ExplainResource.optional(),
    record_id: z.uuid().optional(),
  })
  .refine((r) => (r.principal ? 1 : 0) + (r.token ? 1 : 0) === 1, {
    message: "give exactly one of principal or token",
  })
  .refine((r) => (r.resource ? 1 : 0) + (r.record_id ? 1 : 0) <= 1, {
    message: "give at most one of resource or record_id",
  });
export type ExplainRequest = z.infer<typeof ExplainRequest>;
/** What a client sends: defaults (scopes, labels, state) may be left out. */
export type ExplainInput = z.input<typeof ExplainRequest>;

export const ExplainResponse = z.object({
  decision: z.enum(["allow", "deny"]),
  /** The policies that determined the decision: satisfied permits, or the forbids that matched. */
  determining_policies: z.array(
    z.object({ id: z.string(), effect: z.string(), cedar: z.string() }),
  ),
  /** Why, in words. */
  reasons: z.array(z.string()),
  errors: z.array(z.string()),
  /** The row filter list queries apply for this principal and action (PostgreSQL syntax). */
  sql_filter: z.string(),
  /** Custom policies Cedar checks per record at the gateway, on top of the row filter. */
  gateway_checks: z.array(z.string()),
  principal: z.record(z.string(), z.unknown()),
  resource: z.record(z.string(), z.unknown()).nullable(),
});
export type ExplainResponse = z.infer<typeof ExplainResponse>;

export const PolicyTestResult = z.object({
  passed: z.number().int(),
  failed: z.number().int(),
  results: z.array(
    z.object({
      name: z.string(),
      expected: z.enum(["allow", "deny"]),
      actual: z.enum(["allow", "deny"]),
      ok: z.boolean(),
      policy_ids: z.array(z.string()),
    }),
  ),
});
export type PolicyTestResult = z.infer<typeof PolicyTestResult>;

// ── form-intake submissions (gateway) ───────────────────────────────────────────────────
export const SubmissionParams = z.object({ app: AppId, id: z.uuid() });

export const CreateSubmissionRequest = z.strictObject({
  form_id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, - and _, up to 64")
    .default("default"),
  payload: z.record(z.string(), z.unknown()),
  /** The subject this submission is assigned to for review (the assigned-reviewer block). */
  assigned_reviewer: text(200).optional(),
});
export type CreateSubmissionRequest = z.infer<typeof CreateSubmissionRequest>;

export const Submission = z.object({
  id: z.string(),
  app_id: z.string(),
  form_id: z.string(),
  submitter_id: z.string(),
  payload: z.record(z.string(), z.unknown()),
  labels: z.record(z.string(), z.string()),
  assigned_reviewer: z.string().nullable(),
  created_at: z.string(),
});
export type Submission = z.infer<typeof Submission>;

export const ListSubmissionsQuery = z.strictObject({
  limit,
  cursor,
  form_id: z.string().max(64).optional(),
});
export const SubmissionPage = z.object({
  items: z.array(Submission),
  next_cursor: z.string().nullable(),
});
export type SubmissionPage = z.infer<typeof SubmissionPage>;

// ── audit ────────────────────────────────────────────────────────────────────────────────
// A filter's instant goes to PostgreSQL as written, so it must be one timestamptz parses or the
// query fails: PostgreSQL has no year 0 and refuses offsets past ±15:59. The range is the one
// JavaScript's Date and timestamptz both hold with a four-digit year.
const FIRST_AUDIT_INSTANT_MS = Date.parse("0001-01-01T00:00:00Z");
/** The widest offset a clock uses (UTC+14:00, Kiribati); the format itself allows ±23:59. */
const MAX_OFFSET_MINUTES = 14 * 60;
const offsetMinutes = (v: string) => {
  const m = /[+-](\d{2}):(\d{2})$/.exec(v);
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
};
/** ISO 8601 with an offset (`Z`, or `±hh:mm` up to 14:00), from 0001-01-01 to 9999-12-31 UTC. */
const AuditInstant = z.iso
  .datetime({ offset: true })
  .refine(
    (v) => offsetMinutes(v) <= MAX_OFFSET_MINUTES,
    "must have an offset from -14:00 to +14:00",
  )
  .refine((v) => {
    // Year 0000 is refused as written too, even where its offset would land it in year 0001.
    const ms = Date.parse(v);
    return !v.startsWith("0000") && ms >= FIRST_AUDIT_INSTANT_MS && ms <= LAST_INSTANT_MS;
  }, "must be a date-time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z");

const auditFilters = {
  app: z.string().max(64).optional(),
  actor: z.string().max(200).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  outcome: z.enum(AUDIT_OUTCOMES).optional(),
  resource_type: z.string().max(64).optional(),
  resource_id: z.string().max(200).optional(),
  /** Events at or after this instant. */
  from: AuditInstant.optional(),
  /** Events before this instant. */
  to: AuditInstant.optional(),
};
export const AuditQuery = z.strictObject({ ...auditFilters, limit, cursor });
export type AuditQuery = z.infer<typeof AuditQuery>;
/** `GET /admin/v1/audit/export`: the same filters, every matching event, oldest first, streamed. */
export const AuditExportQuery = z.strictObject({
  ...auditFilters,
  format: z.enum(["ndjson", "csv"]).default("ndjson"),
});
export type AuditExportQuery = z.infer<typeof AuditExportQuery>;
export const AuditPage = z.object({
  items: z.array(AuditEvent),
  next_cursor: z.string().nullable(),
});
export type AuditPage = z.infer<typeof AuditPage>;

/** POST /admin/v1/audit/erasures: erase one data subject's personal data from the audit log. */
export const AuditErasureRequest = z.strictObject({ subject: z.string().min(1).max(200) });
export type AuditErasureRequest = z.infer<typeof AuditErasureRequest>;
export const AuditErasure = z.object({
  /** Keyed hash naming the subject in the `audit.erase` event (HMAC under the master key). */
  subject_tag: z.string(),
  /** Events whose actor and personal data are gone (their commitments stay in the tree). */
  erased: z.number().int(),
  /** Events of the subject written in the last second, not in the tree yet: erase again. */
  pending: z.number().int(),
  /** Events logged before erasure existed (their leaves hash the actor): kept as they are. */
  kept: z.number().int(),
  /** The person's tokens: revoked, their subject replaced by `erased:<subject_tag>`. */
  tokens: z.number().int(),
  /** The `audit.erase` event. */
  event_id: z.string(),
});
export type AuditErasure = z.infer<typeof AuditErasure>;

export const RotatedKey = z.object({ kid: z.string(), created_at: z.string() });
export type RotatedKey = z.infer<typeof RotatedKey>;

/** RFC 7517 JWK set of the Ed25519 keys that verify app tokens (public members only). */
export const Jwks = z.object({
  keys: z.array(
    z.object({
      kty: z.string(),
      crv: z.string(),
      x: z.string(),
      kid: z.string(),
      alg: z.string(),
      use: z.string(),
    }),
  ),
});

export const Health = z.object({
  status: z.literal("ok"),
  datastore: z.enum(["pglite", "postgres"]),
});

// ── event-log events (gateway) ──────────────────────────────────────────────────────────
export const AppendEventRequest = z.strictObject({
  type: z
    .string()
    .regex(
      /^[a-z][a-z0-9_.-]{0,63}$/,
      "lowercase letters, digits, . _ and -, up to 64, from a letter",
    ),
  /** Checked against the app's payload schema. */
  data: z.record(z.string(), z.unknown()),
});
export type AppendEventRequest = z.infer<typeof AppendEventRequest>;

export const LogEvent = z.object({
  id: z.string(),
  app_id: z.string(),
  /** The app's event number: 1, 2, 3, … in the order events were appended, without gaps. */
  seq: z.number().int(),
  type: z.string(),
  author_id: z.string(),
  data: z.record(z.string(), z.unknown()),
  labels: z.record(z.string(), z.string()),
  created_at: z.string(),
});
export type LogEvent = z.infer<typeof LogEvent>;

export const ListEventsQuery = z.strictObject({
  /** Events after this number (0: from the first). */
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  limit,
});
export const EventPage = z.object({
  items: z.array(LogEvent),
  /** Pass back as `after` for the next page; null when this page was the last. */
  next_after: z.number().int().nullable(),
});
export type EventPage = z.infer<typeof EventPage>;

// ── directory items (gateway) ───────────────────────────────────────────────────────────
const Kind = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,63}$/, "lowercase letters, digits, _ and -, up to 64, from a letter");
export const ItemParams = z.object({ app: AppId, id: z.uuid() });

export const CreateItemRequest = z.strictObject({
  kind: Kind,
  /** Checked against the app's payload schema. */
  attrs: z.record(z.string(), z.unknown()),
});
export type CreateItemRequest = z.infer<typeof CreateItemRequest>;

/** A partial change: keys given replace the item's, a null removes one; the result is checked. */
export const PatchItemRequest = z.strictObject({
  attrs: z.record(z.string(), z.unknown()),
});

export const Item = z.object({
  id: z.string(),
  app_id: z.string(),
  kind: z.string(),
  owner_id: z.string(),
  attrs: z.record(z.string(), z.unknown()),
  labels: z.record(z.string(), z.string()),
  created_at: z.string(),
  updated_at: z.string(),
});
export type Item = z.infer<typeof Item>;

/** `kind` and up to five `attr.<name>=<value>` equalities (numbers and true/false match as such). */
export const ListItemsQuery = z
  .object({ limit, cursor, kind: Kind.optional() })
  .catchall(z.string().max(200));
export const ItemPage = z.object({ items: z.array(Item), next_cursor: z.string().nullable() });
export type ItemPage = z.infer<typeof ItemPage>;

// ── approval-queue requests (gateway) ───────────────────────────────────────────────────
export const REQUEST_STATES = [
  "requested",
  "reviewing",
  "approved",
  "rejected",
  "withdrawn",
] as const;
export const RequestState = z.enum(REQUEST_STATES);
export type RequestState = z.infer<typeof RequestState>;
export const RequestParams = z.object({ app: AppId, id: z.uuid() });

export const CreateRequestRequest = z.strictObject({
  /** Checked against the app's payload schema. */
  payload: z.record(z.string(), z.unknown()),
  /** The subject who reviews it: not the requester. */
  assigned_reviewer: text(200),
});
export type CreateRequestRequest = z.infer<typeof CreateRequestRequest>;

export const TransitionRequest = z.strictObject({ to: RequestState });
export type TransitionRequest = z.infer<typeof TransitionRequest>;

export const ApprovalRequestRecord = z.object({
  id: z.string(),
  app_id: z.string(),
  requester_id: z.string(),
  assigned_reviewer: z.string(),
  payload: z.record(z.string(), z.unknown()),
  state: RequestState,
  labels: z.record(z.string(), z.string()),
  created_at: z.string(),
  updated_at: z.string(),
});
export type ApprovalRequestRecord = z.infer<typeof ApprovalRequestRecord>;

/** `role=requester` (yours) or `role=reviewer` (assigned to you), and one `state`. */
export const ListRequestsQuery = z.strictObject({
  limit,
  cursor,
  role: z.enum(["requester", "reviewer"]).optional(),
  state: RequestState.optional(),
});
export const RequestPage = z.object({
  items: z.array(ApprovalRequestRecord),
  next_cursor: z.string().nullable(),
});
export type RequestPage = z.infer<typeof RequestPage>;

// ── ttl-cache entries (gateway) ─────────────────────────────────────────────────────────
export const EntryKey = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "letters, digits, _ . : and -, up to 200");
export const EntryParams = z.object({ app: AppId, key: EntryKey });

export const PutEntryRequest = z.strictObject({
  /** Checked against the app's payload schema. */
  value: z.record(z.string(), z.unknown()),
  /** From one second to 30 days. */
  ttl_seconds: z.number().int().min(1).max(2_592_000),
});
export type PutEntryRequest = z.infer<typeof PutEntryRequest>;

export const Entry = z.object({
  key: z.string(),
  app_id: z.string(),
  owner_id: z.string(),
  value: z.record(z.string(), z.unknown()),
  labels: z.record(z.string(), z.string()),
  expires_at: z.string(),
  updated_at: z.string(),
});
export type Entry = z.infer<typeof Entry>;

// ── bookings (gateway) ──────────────────────────────────────────────────────────────────
/** The longest one booking may last (the table's CHECK says the same). */
export const BOOKING_MAX_DAYS = 31;
const BOOKING_MAX_MS = BOOKING_MAX_DAYS * 86_400_000;

export const BookingResource = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$/,
    "letters, digits, spaces, . _ : and -, up to 100, from a letter or digit",
  );
/** ISO 8601 with an offset (`Z` or `+02:00`), 1970 to 9999; kept to the millisecond. */
const Instant = z.iso.datetime({ offset: true }).refine((v) => {
  const ms = Date.parse(v);
  return ms >= 0 && ms <= LAST_INSTANT_MS;
}, "must be a date-time from 1970 to 9999");
const msOf = (v: string) => Date.parse(v);

export const BookingParams = z.object({ app: AppId, id: z.uuid() });

/** `[starts_at, ends_at)`: a booking may end exactly when the next one starts. */
export const CreateBookingRequest = z
  .strictObject({ resource: BookingResource, starts_at: Instant, ends_at: Instant })
  .refine((b) => msOf(b.ends_at) > msOf(b.starts_at), {
    path: ["ends_at"],
    message: "must be after starts_at",
  })
  .refine((b) => msOf(b.ends_at) - msOf(b.starts_at) <= BOOKING_MAX_MS, {
    path: ["ends_at"],
    message: `a booking lasts at most ${BOOKING_MAX_DAYS} days`,
  });
export type CreateBookingRequest = z.infer<typeof CreateBookingRequest>;

export const Booking = z.object({
  id: z.string(),
  app_id: z.string(),
  resource: z.string(),
  owner_id: z.string(),
  starts_at: z.string(),
  ends_at: z.string(),
  labels: z.record(z.string(), z.string()),
  created_at: z.string(),
});
export type Booking = z.infer<typeof Booking>;

/** Live bookings, newest first; `from`/`to` keep those overlapping `[from, to)` (either may be left open). */
export const ListBookingsQuery = z
  .strictObject({
    limit,
    cursor,
    resource: BookingResource.optional(),
    from: Instant.optional(),
    to: Instant.optional(),
  })
  .refine((q) => !q.from || !q.to || msOf(q.to) > msOf(q.from), {
    path: ["to"],
    message: "must be after from",
  });
export const BookingPage = z.object({
  items: z.array(Booking),
  next_cursor: z.string().nullable(),
});
export type BookingPage = z.infer<typeof BookingPage>;
