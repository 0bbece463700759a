import type { ErrorCode } from "@trellis/contracts";

export interface ErrorIssue {
  path: string;
  message: string;
}

/**
 * An expected failure with a code from the contracts error table. Thrown by services and
 * rendered by the one error handler; anything else that reaches the handler is `internal`.
 */
export class TrellisError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly issues?: ErrorIssue[],
    /** transition_not_allowed: where the record may go from here, for this caller. */
    readonly allowed?: string[],
  ) {
    super(code);
    this.name = "TrellisError";
  }
}
