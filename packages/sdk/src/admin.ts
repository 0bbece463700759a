import {
  AddCustomPolicyResult,
  AdminCreated,
  AdminList,
  type AdminRole,
  App,
  AppPolicyView,
  ApprovalRequestList,
  AuditErasure,
  type AuditExportQuery,
  AuditPage,
  type AuditQuery,
  type CreateAppRequest,
  type CreateTokenRequest,
  CustomTemplateList,
  CustomTemplateVersion,
  type ExplainInput,
  ExplainResponse,
  ImportResult,
  PolicyBlockList,
  PolicyTestResult,
  RenewResult,
  type RenewTokenRequest,
  RotatedKey,
  type SubmitCustomTemplateRequest,
  TemplateDetail,
  TemplateExport,
  TemplateList,
  type TemplateSummary,
  TokenIssued,
  TokenList,
  UpgradeReport,
  type UpgradeRequest,
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
    /**
     * One template: manifest, versions, and who-sees-what in plain words.
     * @example (await admin.templates.get("form-intake")).plain_summary.join("\n")
     */
    get(id: string): Promise<TemplateDetail>;
    /**
     * Everything about a template: manifest, its JSON Schema, DDL with checksums, policy blocks.
     * @example (await admin.templates.export("directory")).ddl.map((m) => m.name)
     */
    export(id: string): Promise<TemplateExport>;
  };
  apps: {
    /**
     * An app's settings and data as NDJSON (header, rows, end line with SHA-256).
     * @example writeFileSync("app.ndjson", await admin.apps.export(app.id))
     */
    export(id: string): Promise<string>;
    /**
     * Recreates an exported app here (same id), all or nothing; the hash is verified.
     * @example await other.apps.import(readFileSync("app.ndjson", "utf8"))
     */
    import(ndjson: string): Promise<ImportResult>;
    /**
     * Moves an app to a newer version of its template: a dry run by default (what changes, how
     * many rows); then `{dry_run: false, confirm: plan}` with the dry run's plan.
     * @example
     * const dry = await admin.apps.upgrade(app.id);
     * await admin.apps.upgrade(app.id, { dry_run: false, confirm: dry.plan });
     */
    upgrade(id: string, req?: UpgradeRequest): Promise<UpgradeReport>;
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
    /**
     * The pause button: the app's data cannot be reached and every token it has is revoked.
     * @example await admin.apps.pause(app.id)
     */
    pause(id: string): Promise<App>;
    /**
     * Makes a paused app reachable again (with new tokens; the old ones stay revoked).
     * @example await admin.apps.resume(app.id)
     */
    resume(id: string): Promise<App>;
    /**
     * Policy approval requests waiting for a steward (renewals beyond policy, custom permits).
     * @example const { items } = await admin.apps.approvalRequests(app.id)
     */
    approvalRequests(id: string): Promise<ApprovalRequestList>;
  };
  policy: {
    /**
     * The policy block library: plain words, Cedar text and SQL predicate of each block.
     * @example (await admin.policy.blocks()).items.map((b) => b.title)
     */
    blocks(): Promise<PolicyBlockList>;
    /**
     * An app's chosen blocks, custom policies and the Cedar set they make.
     * @example const { blocks } = await admin.policy.get(app.id)
     */
    get(appId: string): Promise<AppPolicyView>;
    /**
     * Chooses an app's blocks (takes effect on every server within a second).
     * @example await admin.policy.setBlocks(app.id, ["owner-read", "owner-write", "read-only"])
     */
    setBlocks(appId: string, blocks: string[]): Promise<AppPolicyView>;
    /**
     * Adds a custom Cedar policy. A forbid applies at once; a permit waits for a steward.
     * @example await admin.policy.addCustom(app.id, { id: "custom.no-weekends", cedar: "forbid (…);" })
     */
    addCustom(appId: string, policy: { id: string; cedar: string }): Promise<AddCustomPolicyResult>;
    /**
     * Removes a custom policy.
     * @example await admin.policy.removeCustom(app.id, "custom.no-weekends")
     */
    removeCustom(appId: string, policyId: string): Promise<void>;
    /**
     * Why a principal may or may not do an action on a record, and the row filter lists apply.
     * @example await admin.policy.explain(app.id, { token, action: "read", record_id })
     */
    explain(appId: string, req: ExplainInput): Promise<ExplainResponse>;
    /**
     * Runs a YAML policy test suite against the app's current policies.
     * @example const r = await admin.policy.test(app.id, readFileSync("policy-tests.yaml", "utf8"))
     */
    test(appId: string, yaml: string): Promise<PolicyTestResult>;
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
    /**
     * A fresh token for the same subject, labels and environment; more scope or a longer life
     * than policy allows files an approval request instead (`approval_request_id`).
     * @example const r = await admin.tokens.renew(appId, "tok_01…"); if ("token" in r) use(r.token)
     */
    renew(appId: string, tokenId: string, req?: RenewTokenRequest): Promise<RenewResult>;
  };
  /** People on the control plane, each with their own credential and roles. */
  admins: {
    /**
     * A credential for one person (`token` is shown this once).
     * @example const { token } = await admin.admins.create({ name: "Sam", roles: ["steward"] });
     */
    create(req: { name: string; roles: AdminRole[] }): Promise<AdminCreated>;
    /** @example (await admin.admins.list()).items.map((a) => a.name) */
    list(): Promise<AdminList>;
    /** Revokes a credential at once, on every server. @example await admin.admins.revoke("adm_01…") */
    revoke(id: string): Promise<void>;
  };
  /** Custom templates: an admin submits, a different person with the steward role decides. */
  customTemplates: {
    /**
     * Submits a version (a draft; not in the catalog until a steward approves it).
     * @example await admin.customTemplates.submit({ id: "asset-register", base: "directory", title: "Assets", description: "…" })
     */
    submit(req: SubmitCustomTemplateRequest): Promise<CustomTemplateVersion>;
    /** Every version with its status. @example (await steward.customTemplates.list()).items */
    list(): Promise<CustomTemplateList>;
    /** Steward only, not the submitter. @example await steward.customTemplates.approve("asset-register", 1) */
    approve(id: string, version: number, note?: string): Promise<CustomTemplateVersion>;
    /** Steward only, not the submitter. @example await steward.customTemplates.reject("asset-register", 2, "too broad") */
    reject(id: string, version: number, note?: string): Promise<CustomTemplateVersion>;
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
    /**
     * Every matching event, oldest first, as NDJSON or CSV text (the export is itself audited).
     * @example writeFileSync("audit.csv", await admin.audit.export({ app: app.id, format: "csv" }))
     */
    export(query?: Partial<AuditExportQuery>): Promise<string>;
    /**
     * Erases one data subject's personal data (their actor id and what they submitted about
     * themselves) from every audit event and revokes their tokens; proofs and `audit verify`
     * keep passing. Irreversible.
     * @example const { erased, pending } = await admin.audit.erase("user-123")
     */
    erase(subject: string): Promise<AuditErasure>;
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
      get: async (id) =>
        send(conn, {
          method: "GET",
          path: `/admin/v1/templates/${segment(id, "template id")}`,
          parse: TemplateDetail,
        }),
      export: async (id) =>
        send(conn, {
          method: "GET",
          path: `/admin/v1/templates/${segment(id, "template id")}/export`,
          parse: TemplateExport,
        }),
    },
    apps: {
      export: async (id) =>
        send<string>(conn, {
          method: "GET",
          path: `/admin/v1/apps/${segment(id, "app id")}/export`,
          raw: true,
        }),
      upgrade: async (id, req = {}) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(id, "app id")}/upgrade`,
          body: req,
          parse: UpgradeReport,
        }),
      import: (ndjson) =>
        send(conn, {
          method: "POST",
          path: "/admin/v1/apps/import",
          text: { contentType: "application/x-ndjson", content: ndjson },
          parse: ImportResult,
        }),
      create: (req) =>
        send(conn, { method: "POST", path: "/admin/v1/apps", body: req, parse: App }),
      get: async (id) =>
        send(conn, { method: "GET", path: `/admin/v1/apps/${segment(id, "app id")}`, parse: App }),
      pause: async (id) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(id, "app id")}/pause`,
          parse: App,
        }),
      resume: async (id) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(id, "app id")}/resume`,
          parse: App,
        }),
      approvalRequests: async (id) =>
        send(conn, {
          method: "GET",
          path: `/admin/v1/apps/${segment(id, "app id")}/approval-requests`,
          parse: ApprovalRequestList,
        }),
    },
    policy: {
      blocks: () =>
        send(conn, { method: "GET", path: "/admin/v1/policy/blocks", parse: PolicyBlockList }),
      get: async (appId) =>
        send(conn, {
          method: "GET",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy`,
          parse: AppPolicyView,
        }),
      setBlocks: async (appId, blocks) =>
        send(conn, {
          method: "PUT",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy/blocks`,
          body: { blocks },
          parse: AppPolicyView,
        }),
      addCustom: async (appId, policy) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy/custom`,
          body: policy,
          parse: AddCustomPolicyResult,
        }),
      removeCustom: async (appId, policyId) =>
        send<void>(conn, {
          method: "DELETE",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy/custom/${segment(policyId, "policy id")}`,
        }),
      explain: async (appId, req) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy/explain`,
          body: req,
          parse: ExplainResponse,
        }),
      test: async (appId, yaml) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(appId, "app id")}/policy/test`,
          text: { contentType: "application/yaml", content: yaml },
          parse: PolicyTestResult,
        }),
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
      renew: async (appId, tokenId, req = {}) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/apps/${segment(appId, "app id")}/tokens/${segment(tokenId, "token id")}/renew`,
          body: req,
          parse: RenewResult,
        }),
    },
    admins: {
      create: (req) =>
        send(conn, { method: "POST", path: "/admin/v1/admins", body: req, parse: AdminCreated }),
      list: () => send(conn, { method: "GET", path: "/admin/v1/admins", parse: AdminList }),
      revoke: async (id) =>
        send<void>(conn, { method: "DELETE", path: `/admin/v1/admins/${segment(id, "admin id")}` }),
    },
    customTemplates: {
      submit: (req) =>
        send(conn, {
          method: "POST",
          path: "/admin/v1/templates/custom",
          body: req,
          parse: CustomTemplateVersion,
        }),
      list: () =>
        send(conn, {
          method: "GET",
          path: "/admin/v1/templates/custom",
          parse: CustomTemplateList,
        }),
      approve: async (id, version, note) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/templates/custom/${segment(id, "template id")}/versions/${version}/approve`,
          body: note === undefined ? {} : { note },
          parse: CustomTemplateVersion,
        }),
      reject: async (id, version, note) =>
        send(conn, {
          method: "POST",
          path: `/admin/v1/templates/custom/${segment(id, "template id")}/versions/${version}/reject`,
          body: note === undefined ? {} : { note },
          parse: CustomTemplateVersion,
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
            resource_type: query.resource_type,
            resource_id: query.resource_id,
            from: query.from,
            to: query.to,
            limit: query.limit,
            cursor: query.cursor,
          },
          parse: AuditPage,
        }),
      export: (query = {}) =>
        send<string>(conn, {
          method: "GET",
          path: "/admin/v1/audit/export",
          query: { ...query },
          raw: true,
        }),
      erase: (subject) =>
        send(conn, {
          method: "POST",
          path: "/admin/v1/audit/erasures",
          body: { subject },
          parse: AuditErasure,
        }),
    },
  };
}
