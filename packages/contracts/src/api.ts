import { z } from "zod";
import { AUDIT_ACTIONS, AUDIT_OUTCOMES, AuditEvent } from "./audit";
import { ERROR_CODES, type ErrorCode } from "./errors";
import { idPattern } from "./ids";

/** Bounds every list endpoint shares. */
export const PAGE = { defaultLimit: 50, maxLimit: 200 } as const;

const text = (max: number) => z.string().min(1).max(max);
const limit = z.coerce.number().int().min(1).max(PAGE.maxLimit).default(PAGE.defaultLimit);
const cursor = z.string().min(1).max(200).optional();

export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    request_id: z.string(),
    /** Present for payload and request validation failures: where and what, never internals. */
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
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
});
export type TemplateSummary = z.infer<typeof TemplateSummary>;
export const TemplateList = z.object({ items: z.array(TemplateSummary) });

// ── apps ─────────────────────────────────────────────────────────────────────────────────
export const AppId = z.string().regex(idPattern("app"), "must be an app id (app_…)");
export const AppParams = z.object({ app: AppId });

export const CreateAppRequest = z.strictObject({
  name: text(100),
  template: text(64),
  owners: z.array(text(200)).min(1).max(20),
  /** The creator's fields, as a JSON Schema in Trellis's safe subset (see the README). */
  payload_schema: z.record(z.string(), z.unknown()),
  retention_days: z.number().int().min(1).max(3650).optional(),
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
  created_at: z.string(),
});
export type App = z.infer<typeof App>;

// ── tokens ───────────────────────────────────────────────────────────────────────────────
export const CreateTokenRequest = z.strictObject({
  subject: text(200),
  scopes: z.array(text(64)).min(1).max(16),
  /** Checked against the server's configured bounds (ttl_out_of_range); a week is the hard ceiling. */
  ttl_seconds: z.number().int().positive().max(604_800).optional(),
});
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export const TokenIssued = z.object({
  token: z.string(),
  token_id: z.string(),
  subject: z.string(),
  scopes: z.array(z.string()),
  expires_at: z.string(),
});
export type TokenIssued = z.infer<typeof TokenIssued>;

export const TokenParams = z.object({ app: AppId, token_id: z.string().regex(idPattern("token")) });

/** A token as the control plane lists it: never the token itself. */
export const TokenInfo = z.object({
  token_id: z.string(),
  subject: z.string(),
  scopes: z.array(z.string()),
  issued_at: z.string(),
  expires_at: z.string(),
  revoked_at: z.string().nullable(),
  status: z.enum(["active", "expired", "revoked"]),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
export const TokenList = z.object({ items: z.array(TokenInfo) });
export type TokenList = z.infer<typeof TokenList>;

// ── form-intake submissions (gateway) ───────────────────────────────────────────────────
export const SubmissionParams = z.object({ app: AppId, id: z.uuid() });

export const CreateSubmissionRequest = z.strictObject({
  form_id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, - and _, up to 64")
    .default("default"),
  payload: z.record(z.string(), z.unknown()),
});
export type CreateSubmissionRequest = z.infer<typeof CreateSubmissionRequest>;

export const Submission = z.object({
  id: z.string(),
  app_id: z.string(),
  form_id: z.string(),
  submitter_id: z.string(),
  payload: z.record(z.string(), z.unknown()),
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
export const AuditQuery = z.strictObject({
  app: z.string().max(64).optional(),
  actor: z.string().max(200).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  outcome: z.enum(AUDIT_OUTCOMES).optional(),
  limit,
  cursor,
});
export type AuditQuery = z.infer<typeof AuditQuery>;
export const AuditPage = z.object({
  items: z.array(AuditEvent),
  next_cursor: z.string().nullable(),
});
export type AuditPage = z.infer<typeof AuditPage>;

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
