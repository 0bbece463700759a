import { ERRORS, type ErrorBody, type ErrorCode } from "@trellis/contracts";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { sqlState } from "../db/db";
import { type ErrorIssue, TrellisError } from "../lib/errors";
import type { AuditRecord, AuditService } from "../modules/audit/audit.service";
import { anonymousContext, auditContext, type RequestContext } from "./context";

/** Maps anything thrown to a code from the table; unknown errors become `internal`. */
function classify(err: unknown): { code: ErrorCode; issues?: ErrorIssue[]; allowed?: string[] } {
  if (err instanceof TrellisError)
    return { code: err.code, issues: err.issues, allowed: err.allowed };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? "request";
    return {
      code: "invalid_request",
      issues: err.validation.slice(0, 20).map((v) => ({
        path: `${where}${v.instancePath || ""}`,
        message: v.message ?? "is invalid",
      })),
    };
  }
  const e = err as FastifyError;
  const state = sqlState(err);
  if (state === "42501") return { code: "forbidden" }; // RLS or append-only refused it
  // PostgreSQL's text and jsonb cannot hold U+0000 (22021 in text, 22P05 in jsonb): a caller's
  // value with one is the caller's error. Mapped here, not scanned for on every request.
  if (state === "22021" || state === "22P05")
    return {
      code: "invalid_request",
      issues: [{ path: "request", message: "text may not contain the NUL character (U+0000)" }],
    };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return { code: "body_too_large" };
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return { code: "unsupported_media_type" };
  if (
    e.code === "FST_ERR_CTP_EMPTY_JSON_BODY" ||
    e.code === "FST_ERR_CTP_INVALID_JSON_BODY" ||
    (err instanceof SyntaxError && e.statusCode === 400)
  ) {
    return { code: "malformed_json" };
  }
  if (e.code === "FST_ERR_CTP_INVALID_CONTENT_LENGTH") return { code: "invalid_request" };
  return { code: "internal" };
}

export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  requestId: string,
  issues?: ErrorIssue[],
  allowed?: string[],
) {
  const body: ErrorBody = {
    error: {
      code,
      message: ERRORS[code].message,
      request_id: requestId,
      ...(issues ? { issues } : {}),
      ...(allowed ? { allowed } : {}),
    },
  };
  return reply.code(ERRORS[code].status).type("application/json").send(JSON.stringify(body));
}

/** The URL path without its query string, for the log: a query string may carry secrets. */
const pathOf = (req: FastifyRequest) => `${req.method} ${req.url.split("?")[0]}`.slice(0, 200);

/** A caller's text as the audit event can store it (PostgreSQL text holds no U+0000). */
const storable = (s: string | null) => (s === null ? null : s.replaceAll("\u0000", "\ufffd"));

/** A failed request's audit event; failing to write it is logged, never answered instead. */
async function recordFailure(
  audit: Pick<AuditService, "record">,
  req: FastifyRequest,
  ctx: RequestContext,
  rec: AuditRecord,
) {
  try {
    await audit.record(auditContext(ctx), rec);
  } catch (err) {
    req.log.error({ err }, "could not write the audit event for a failed request");
  }
}

/**
 * Fastify's own errors before routing (a malformed percent-encoding, a path parameter over the
 * length limit) answered like every other error: the same body, a request id, audited.
 */
export const frameworkErrorHandler =
  (audit: Pick<AuditService, "record">) =>
  async (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    reply.header("x-request-id", req.id);
    await recordFailure(audit, req, anonymousContext(req.id), {
      action: "route.unmatched",
      resourceType: "route",
      resourceId: storable(pathOf(req)),
      outcome: "denied",
      errorCode: "invalid_request",
    });
    return sendError(reply, "invalid_request", req.id, [
      {
        path: "url",
        message:
          err.code === "FST_ERR_MAX_PARAM_LENGTH"
            ? "a path segment is longer than allowed"
            : "the URL is not validly encoded",
      },
    ]);
  };

/**
 * The one error handler and the not-found handler. Every error response is audited (unless the
 * handler already audited it in its transaction) and rendered as `{error: {code, message,
 * request_id}}`; the cause of an internal error is logged, never returned.
 */
export function installErrorHandling(app: FastifyInstance, audit: Pick<AuditService, "record">) {
  const auditDenial = async (req: FastifyRequest, code: ErrorCode) => {
    const ctx = req.trellis;
    if (!ctx || ctx.audited) return;
    ctx.audited = true;
    const cfg = req.routeOptions.config;
    await recordFailure(audit, req, ctx, {
      action: cfg.action ?? "route.unmatched",
      resourceType: cfg.resourceType ?? "route",
      resourceId: storable(
        cfg.action
          ? ((req.params as Record<string, string> | undefined)?.[cfg.resourceParam ?? "id"] ??
              null)
          : pathOf(req),
      ),
      outcome: ERRORS[code].status >= 500 ? "error" : "denied",
      errorCode: code,
    });
  };

  app.setErrorHandler(async (err, req, reply) => {
    const { code, issues, allowed } = classify(err);
    if (code === "internal") req.log.error({ err }, "internal error");
    await auditDenial(req, code);
    return sendError(reply, code, req.id, issues, allowed);
  });

  app.setNotFoundHandler(async (req, reply) => {
    await auditDenial(req, "route_not_found");
    return sendError(reply, "route_not_found", req.id);
  });
}
