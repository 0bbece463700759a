import type { ActorRole, AdminRole, AuditAction } from "@trellis/contracts";
import type { GovernedApp } from "../modules/apps/apps.service";
import type { AuditContext } from "../modules/audit/audit.service";
import type { TokenClaims } from "../modules/tokens/tokens.service";

/** Per-request facts gathered by the auth hooks and used by handlers and the error handler. */
export interface RequestContext {
  requestId: string;
  actorId: string | null;
  actorRole: ActorRole;
  appId: string | null;
  tokenId: string | null;
  /** Set when the handler already wrote this request's audit event (e.g. inside the gateway function). */
  audited: boolean;
  claims?: TokenClaims;
  governed?: GovernedApp;
  /** Control plane: the roles of the credential that made this request. */
  adminRoles?: readonly AdminRole[];
  /** The policies behind this request's decision, for its audit event (allowed or denied). */
  policyIds?: readonly string[];
}

declare module "fastify" {
  interface FastifyRequest {
    trellis: RequestContext;
  }
  interface FastifyContextConfig {
    /** The audit action this route records, allowed or denied. */
    action?: AuditAction;
    resourceType?: string;
    /** The URL parameter naming the resource, for audit events (default `id`). */
    resourceParam?: string;
    /** Gateway routes: the token needs at least one of these scopes. */
    anyScope?: readonly string[];
    /** Gateway routes: the app's template this route belongs to. */
    template?: string;
    /** Control-plane routes: the roles that may call it (default: admin). */
    roles?: readonly AdminRole[];
  }
}

/** A request's context before anything is known of its caller. */
export const anonymousContext = (requestId: string): RequestContext => ({
  requestId,
  actorId: null,
  actorRole: "anonymous",
  appId: null,
  tokenId: null,
  audited: false,
});

export const auditContext = (c: RequestContext): AuditContext => ({
  requestId: c.requestId,
  actorId: c.actorId,
  actorRole: c.actorRole,
  appId: c.appId,
  tokenId: c.tokenId,
  policyIds: c.policyIds,
});

// Query parameters under which clients commonly (and wrongly) send tokens: URLs end up in
// logs, proxies and browser history, so such a request is refused before anything else.
const TOKEN_PARAMS = ["access_token", "token", "jwt", "api_key", "apikey", "bearer"];

/** True when the URL carries something that looks like a credential in its query string. */
export function tokenInQuery(url: string): boolean {
  const q = url.indexOf("?");
  if (q < 0) return false;
  const params = new URLSearchParams(url.slice(q + 1));
  return TOKEN_PARAMS.some((name) => params.has(name));
}

/** The bearer token of an Authorization header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S{1,4096})\s*$/i.exec(header);
  return m?.[1];
}
