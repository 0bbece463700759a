import {
  App,
  AuditPage,
  type AuditQuery,
  type CreateAppRequest,
  type CreateTokenRequest,
  RotatedKey,
  TemplateList,
  type TemplateSummary,
  TokenIssued,
  TokenList,
} from "@trellis/contracts";
import { type ConnectionOptions, connection, segment, send } from "./http";

/** Options of {@link createAdminClient}: the server and the admin bearer token. */
export type AdminClientOptions = ConnectionOptions;

/** The template catalog as the server returns it. */
export interface TemplateCatalog {
  items: TemplateSummary[];
}

/** The control plane (`/admin/v1`), authenticated with the admin token. */
export interface AdminClient {
  templates: {
    /**
     * The template catalog.
     * @example const { items } = await admin.templates.list(); // items[0].id === "form-intake"
     */
    list(): Promise<TemplateCatalog>;
  };
  apps: {
    /**
     * Creates an app from a template with the creator's payload schema.
     * @example
     * const app = await admin.apps.create({
     *   name: "Contact form", template: "form-intake", owners: ["ana@example.org"],
     *   payload_schema: { type: "object", properties: { email: { type: "string", format: "email" } } },
     * });
     */
    create(req: CreateAppRequest): Promise<App>;
    /**
     * One app by id; `app_not_found` when there is none.
     * @example const app = await admin.apps.get("app_01jf9x…");
     */
    get(id: string): Promise<App>;
  };
  tokens: {
    /**
     * Issues a short-lived app token. The token is in the answer only: store it now.
     * @example
     * const { token } = await admin.tokens.create(app.id, { subject: "kiosk-1", scopes: ["create"], ttl_seconds: 600 });
     */
    create(appId: string, req: CreateTokenRequest): Promise<TokenIssued>;
    /**
     * The app's tokens with their status, never the tokens themselves.
     * @example (await admin.tokens.list(appId)).items.filter((t) => t.status === "active")
     */
    list(appId: string): Promise<TokenList>;
    /**
     * Revokes one token; effective on the next request on every server. Idempotent.
     * @example await admin.tokens.revoke(appId, "tok_01…")
     */
    revoke(appId: string, tokenId: string): Promise<void>;
    /**
     * Revokes every token of the app issued up to now (incident response).
     * @example await admin.tokens.revokeAll(appId)
     */
    revokeAll(appId: string): Promise<void>;
  };
  keys: {
    /**
     * A new signing key signs from now on; older tokens keep verifying until they expire.
     * @example const { kid } = await admin.keys.rotate()
     */
    rotate(): Promise<RotatedKey>;
  };
  audit: {
    /**
     * One page of audit events, newest first; pass `next_cursor` back as `cursor` for the next.
     * @example const page = await admin.audit.list({ app: app.id, outcome: "denied", limit: 20 });
     */
    list(query?: Partial<AuditQuery>): Promise<AuditPage>;
  };
}

/**
 * A client for the control plane. Throws a TypeError for an unusable base URL or token; every
 * call resolves with the contract's type or rejects with a `TrellisApiError`.
 *
 * @example
 * import { createAdminClient } from "@trellis/sdk";
 * const admin = createAdminClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.TRELLIS_ADMIN_TOKEN ?? "" });
 * const { items } = await admin.templates.list();
 */
export function createAdminClient(options: AdminClientOptions): AdminClient {
  const conn = connection(options);
  return {
    templates: {
      list: () => send(conn, { method: "GET", path: "/admin/v1/templates", parse: TemplateList }),
    },
    apps: {
      create: (req) =>
        send(conn, { method: "POST", path: "/admin/v1/apps", body: req, parse: App }),
      get: async (id) =>
        send(conn, { method: "GET", path: `/admin/v1/apps/${segment(id, "app id")}`, parse: App }),
    },
    tokens: {
      create: async (appId, req) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(appId, "app id")}/tokens`,
          body: req,
          parse: TokenIssued,
        }),
      list: async (appId) =>
        send(conn, {
          method: "GET",
          path: `/admin/v1/apps/${segment(appId, "app id")}/tokens`,
          parse: TokenList,
        }),
      revoke: async (appId, tokenId) =>
        send<void>(conn, {
          method: "DELETE",
          path: `/admin/v1/apps/${segment(appId, "app id")}/tokens/${segment(tokenId, "token id")}`,
        }),
      revokeAll: async (appId) =>
        send<void>(conn, {
          method: "DELETE",
          path: `/admin/v1/apps/${segment(appId, "app id")}/tokens`,
        }),
    },
    keys: {
      rotate: () =>
        send(conn, { method: "POST", path: "/admin/v1/keys/rotate", parse: RotatedKey }),
    },
    audit: {
      list: (query = {}) =>
        send(conn, {
          method: "GET",
          path: "/admin/v1/audit",
          query: {
            app: query.app,
            actor: query.actor,
            action: query.action,
            outcome: query.outcome,
            limit: query.limit,
            cursor: query.cursor,
          },
          parse: AuditPage,
        }),
    },
  };
}
