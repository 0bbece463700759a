/**
 * @trellis/sdk — a typed client for Trellis over `fetch`.
 *
 * - {@link createAdminClient}: the control plane (templates, apps, tokens, audit) with the admin token.
 * - {@link createAppClient}: one app's gateway API (submissions) with an app token.
 * - {@link TrellisApiError}: what every failed call rejects with.
 * - {@link verifyInclusion}, {@link verifyConsistency}, {@link verifyCheckpoint}: check the audit
 *   log's proofs and checkpoints without trusting the server (also `@trellis/sdk/verify`, plain
 *   JavaScript for Node ESM).
 */

// The contract types callers hold: requests they build and answers they read.
export type {
  ActorRole,
  App,
  AuditAction,
  AuditEvent,
  AuditOutcome,
  AuditPage,
  AuditQuery,
  CreateAppRequest,
  CreateTokenRequest,
  ErrorCode,
  FormIntakeScope,
  Submission,
  SubmissionPage,
  TemplateSummary,
  TokenIssued,
} from "@trellis/contracts";
export {
  type AdminClient,
  type AdminClientOptions,
  createAdminClient,
  type TemplateCatalog,
} from "./admin";
export {
  type AppClient,
  type AppClientOptions,
  createAppClient,
  type ListSubmissionsOptions,
  type NewSubmission,
} from "./app";
export { type ApiIssue, TrellisApiError, type TrellisApiErrorInit } from "./errors";
export type { ConnectionOptions } from "./http";
export {
  canonicalJson,
  leafHash,
  nodeHash,
  type PersonalOpening,
  parseCosignerKey,
  parseVerifierKey,
  personalCommitment,
  type VerifiedCheckpoint,
  verifyCheckpoint,
  verifyConsistency,
  verifyCosignature,
  verifyInclusion,
  verifyNote,
  verifyOpening,
} from "./verify.js";
