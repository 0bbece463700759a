/**
 * The one table of error codes. Every error body Trellis returns is
 * `{ error: { code, message, request_id } }` with a code from this table; the HTTP status
 * comes from here too, so a code always means the same status everywhere.
 * Messages are safe for any caller: they never carry internal details.
 */
export const ERRORS = {
  malformed_json: { status: 400, message: "The request body is not valid JSON." },
  body_too_large: { status: 413, message: "The request body is larger than the limit." },
  unsupported_media_type: { status: 415, message: "Send the body as application/json." },
  invalid_request: { status: 400, message: "The request does not match the expected shape." },
  payload_invalid: { status: 422, message: "The payload does not match the app's schema." },
  payload_schema_invalid: {
    status: 400,
    message: "The payload schema uses something Trellis does not allow.",
  },
  template_not_found: { status: 404, message: "There is no template with that id." },
  app_not_found: { status: 404, message: "There is no app with that id." },
  not_found: { status: 404, message: "Nothing was found there." },
  route_not_found: { status: 404, message: "There is no such route." },
  resource_not_in_template: {
    status: 404,
    message: "This app's template has no such resource.",
  },
  auth_required: { status: 401, message: "A bearer token is required." },
  admin_token_invalid: { status: 401, message: "The admin token is not valid." },
  // Bad tokens: each failure has its own code so a client (and the audit log) can tell them apart.
  token_malformed: {
    status: 401,
    message: "The token is not a well-formed signed JWT.",
  },
  token_alg_none: { status: 401, message: "The token is unsigned (alg none)." },
  token_alg_not_allowed: {
    status: 401,
    message: "The token is signed with an algorithm Trellis does not accept (only EdDSA).",
  },
  token_untrusted_header: {
    status: 401,
    message:
      "The token names its own key (jwk, jku, x5u or x5c); Trellis trusts only its own keys.",
  },
  token_kid_unknown: {
    status: 401,
    message: "The token names a signing key this server does not have (or has retired).",
  },
  token_signature_invalid: { status: 401, message: "The token's signature does not verify." },
  token_invalid: {
    status: 401,
    message: "The token's claims are not the ones Trellis issues (issuer, types or subject).",
  },
  token_exp_missing: { status: 401, message: "The token has no expiry; Trellis refuses those." },
  token_ttl_exceeds_max: {
    status: 401,
    message: "The token's lifetime is longer than its environment allows.",
  },
  token_expired: { status: 401, message: "The token has expired." },
  token_not_yet_valid: { status: 401, message: "The token is not valid yet." },
  token_wrong_app: { status: 403, message: "The token belongs to another app." },
  token_revoked: { status: 401, message: "The token has been revoked." },
  token_scope_unknown: {
    status: 401,
    message: "The token carries a scope its app's template does not define.",
  },
  token_in_query: {
    status: 401,
    message:
      "Send the token in the Authorization header, never in the URL: treat this one as leaked.",
  },
  token_not_renewable: {
    status: 409,
    message: "This token cannot be renewed (it was revoked, or its app revoked all its tokens).",
  },
  app_paused: {
    status: 403,
    message: "The app is paused: its data cannot be reached until an admin resumes it.",
  },
  app_not_active: { status: 409, message: "The app is not in a state that allows this." },
  quota_exceeded: {
    status: 409,
    message: "The app holds as many entries as its quota allows; wait for entries to expire.",
  },
  transition_not_allowed: {
    status: 409,
    message: "The record cannot move to that state from where it is; `allowed` lists where it can.",
  },
  reviewer_is_requester: {
    status: 422,
    message: "Nobody reviews their own request: name another subject as the reviewer.",
  },
  booking_conflict: {
    status: 409,
    message:
      "That resource is already booked for part of that time; pick another time or resource.",
  },
  app_exists: {
    status: 409,
    message: "An app with that id already exists on this instance.",
  },
  import_invalid: {
    status: 400,
    message: "The import is not a Trellis app export (see issues for the line and what is wrong).",
  },
  import_hash_mismatch: {
    status: 422,
    message:
      "The export's content does not match its SHA-256: it was changed or cut short. Nothing was imported.",
  },
  import_template_mismatch: {
    status: 409,
    message:
      "This instance's template differs from the export's (id, version or SQL). Nothing was imported.",
  },
  upgrade_not_available: {
    status: 409,
    message:
      "The app is already on that version of its template (or a later one), or the template has no such version.",
  },
  upgrade_failed: {
    status: 409,
    message:
      "A step of the upgrade failed; everything was rolled back and the app stays on its version.",
  },
  upgrade_needs_dry_run: {
    status: 409,
    message:
      "Run the upgrade as a dry run first and pass its plan as confirm (the plan changed, or none was given).",
  },
  role_missing: {
    status: 403,
    message: "Your credential lacks the role this call needs (admin or steward).",
  },
  steward_must_differ: {
    status: 403,
    message:
      "A template version is approved or rejected by a steward other than the person who submitted it.",
  },
  template_exists: {
    status: 409,
    message: "That id belongs to a built-in template; choose another.",
  },
  template_not_draft: {
    status: 409,
    message: "That template version was already approved or rejected.",
  },
  payload_schema_required: {
    status: 400,
    message: "This template has no default payload schema: send payload_schema.",
  },
  audit_not_integrated: {
    status: 409,
    message: "The event is committed but not in the Merkle tree yet; retry within a second.",
  },
  audit_log_inconsistent: {
    status: 409,
    message: "The audit log is inconsistent (run `trellis audit verify`); nothing was changed.",
  },
  proof_out_of_range: {
    status: 400,
    message: "The proof asks for a tree size or leaf outside the log (sizes are not clamped).",
  },
  scope_missing: { status: 403, message: "The token lacks the scope this call needs." },
  forbidden: { status: 403, message: "The policy does not allow this." },
  policy_denied: {
    status: 403,
    message: "The app's policies do not allow this action on this record.",
  },
  policy_invalid: {
    status: 422,
    message: "The policy does not parse or does not validate against the app's Cedar schema.",
  },
  policy_block_unknown: { status: 400, message: "There is no policy block with that id." },
  policy_exists: { status: 409, message: "The app already has a policy with that id." },
  policy_test_invalid: {
    status: 400,
    message: "The policy test suite is not valid YAML of the expected shape.",
  },
  labels_invalid: {
    status: 400,
    message: "Row labels must be up to 8 key/value pairs of letters, digits, - _ and .",
  },
  scope_unknown: { status: 400, message: "A requested scope does not exist for this template." },
  ttl_out_of_range: { status: 400, message: "The requested token lifetime is out of range." },
  shutting_down: { status: 503, message: "The server is shutting down; retry shortly." },
  internal: { status: 500, message: "Something went wrong on our side." },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** @example statusOf("scope_missing") // 403 */
export const statusOf = (code: ErrorCode): number => ERRORS[code].status;
