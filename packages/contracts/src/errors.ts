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
  auth_required: { status: 401, message: "A bearer token is required." },
  admin_token_invalid: { status: 401, message: "The admin token is not valid." },
  token_invalid: {
    status: 401,
    message: "The token is malformed, unsigned, or its signature does not verify.",
  },
  token_expired: { status: 401, message: "The token has expired." },
  token_not_yet_valid: { status: 401, message: "The token is not valid yet." },
  token_wrong_app: { status: 403, message: "The token belongs to another app." },
  token_revoked: { status: 401, message: "The token has been revoked." },
  token_scope_unknown: {
    status: 401,
    message: "The token carries a scope its app's template does not define.",
  },
  token_untrusted_header: {
    status: 401,
    message:
      "The token names its own key (jwk, jku, x5u or x5c); Trellis trusts only its own keys.",
  },
  token_in_query: {
    status: 401,
    message:
      "Send the token in the Authorization header, never in the URL: treat this one as leaked.",
  },
  scope_missing: { status: 403, message: "The token lacks the scope this call needs." },
  forbidden: { status: 403, message: "The policy does not allow this." },
  scope_unknown: { status: 400, message: "A requested scope does not exist for this template." },
  ttl_out_of_range: { status: 400, message: "The requested token lifetime is out of range." },
  shutting_down: { status: 503, message: "The server is shutting down; retry shortly." },
  internal: { status: 500, message: "Something went wrong on our side." },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** @example statusOf("scope_missing") // 403 */
export const statusOf = (code: ErrorCode): number => ERRORS[code].status;
