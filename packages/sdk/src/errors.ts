import type { ErrorCode } from "@trellis/contracts";

/** One validation problem: where (a JSON pointer such as `/payload/email`) and what. */
export interface ApiIssue {
  path: string;
  message: string;
}

/** What a {@link TrellisApiError} is built from. */
export interface TrellisApiErrorInit {
  status: number;
  code: ErrorCode;
  message: string;
  requestId: string | null;
  issues?: ApiIssue[];
  allowed?: string[];
}

/**
 * An error answer from Trellis: the HTTP status, the stable `code` from the contracts' error
 * table, the safe message, the request id to quote in a support question, and for validation
 * failures the `issues`. An answer the SDK cannot read as a Trellis error body (a proxy's HTML
 * page, a body that does not match the contract) is code `internal` with the real status.
 *
 * @example
 * try {
 *   await app.submissions.create({ payload: { email: "not an email" } });
 * } catch (err) {
 *   if (err instanceof TrellisApiError && err.code === "payload_invalid") {
 *     for (const issue of err.issues ?? []) console.log(issue.path, issue.message);
 *   } else throw err;
 * }
 */
export class TrellisApiError extends Error {
  override readonly name = "TrellisApiError";
  readonly status: number;
  readonly code: ErrorCode;
  /** The server's request id (`req_…`), or null when the answer did not carry one. */
  readonly requestId: string | null;
  readonly issues?: ApiIssue[];
  /** With `transition_not_allowed`: the states this caller may move the record to instead. */
  readonly allowed?: string[];

  constructor(init: TrellisApiErrorInit) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    if (init.issues) this.issues = init.issues;
    if (init.allowed) this.allowed = init.allowed;
  }
}
