import type { CustomTemplateVersion, SubmitCustomTemplateRequest } from "@trellis/contracts";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { checkPayloadSchema } from "../apps/payload-schema";
import type { AuditContext, AuditService } from "../audit/audit.service";
import { type BlockId, blockById } from "../policy/blocks";
import type { PolicyEngine } from "../policy/engine";
import type { Manifest, Template } from "./catalog";

export const TEMPLATES_CHANNEL = "trellis_templates";

interface Row {
  id: string;
  version: number;
  base: string;
  definition: SubmitCustomTemplateRequest;
  status: CustomTemplateVersion["status"];
  submitted_by: string;
  submitted_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  decision_note: string | null;
}
const COLUMNS =
  "id, version, base, definition, status, submitted_by, submitted_at, decided_by, decided_at, decision_note";
const view = (r: Row): CustomTemplateVersion => ({
  id: r.id,
  version: Number(r.version),
  base: r.base,
  status: r.status,
  definition: r.definition,
  submitted_by: r.submitted_by,
  submitted_at: r.submitted_at.toISOString(),
  decided_by: r.decided_by,
  decided_at: r.decided_at?.toISOString() ?? null,
  decision_note: r.decision_note,
});

/** An approved version as a catalog entry: the base's tables, scopes and API, its own words. */
export function customTemplate(base: Template, r: Row): Template {
  const d = r.definition;
  const retention = d.retention_days_default ?? base.summary.retention_days_default;
  const blocks = (d.default_policy_blocks ?? base.manifest.default_policy_blocks) as BlockId[];
  const manifest: Manifest & { base: string } = {
    ...base.manifest,
    id: d.id,
    version: Number(r.version),
    title: d.title,
    description: d.description,
    retention_days_default: retention,
    default_policy_blocks: blocks,
    upgrades: [], // versions of a custom template differ in words and defaults, not in data
    base: base.summary.id,
  };
  return {
    ...base,
    summary: {
      ...base.summary,
      id: d.id,
      version: Number(r.version),
      title: d.title,
      description: d.description,
      retention_days_default: retention,
      base: base.summary.id,
      ...(r.decided_by ? { approved_by: r.decided_by } : {}),
    },
    manifest,
    defaultBlocks: blocks,
    defaultPayloadSchema: d.payload_schema,
  };
}

/**
 * Custom templates: an admin submits a version (a draft); a steward who is not the submitter
 * approves or rejects it (the table refuses the same person too); only the newest approved
 * version of each is in the catalog, on every server (NOTIFY trellis_templates).
 */
export function customTemplatesService(deps: {
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
  /** The live catalog: built-in templates, then approved custom ones added here. */
  catalog: Map<string, Template>;
}) {
  const { db, clock, audit, engine, catalog } = deps;
  const builtins = new Map([...catalog].filter(([, t]) => t.base === t.summary.id));
  let stopListening = async () => {};

  async function reload(): Promise<void> {
    const { rows } = await db.query<Row>(
      `SELECT DISTINCT ON (id) ${COLUMNS} FROM trellis.custom_templates
        WHERE status = 'approved' ORDER BY id, version DESC`,
    );
    for (const r of rows) {
      const base = builtins.get(r.base);
      if (!base) continue; // its base left the catalog: apps of it report app_not_found
      engine.addTemplate(r.id, base.actions);
      catalog.set(r.id, customTemplate(base, r));
    }
  }

  function check(req: SubmitCustomTemplateRequest): Template {
    const base = builtins.get(req.base);
    if (!base)
      throw new TrellisError("template_not_found", [
        { path: "/base", message: `no built-in template "${req.base.slice(0, 64)}"` },
      ]);
    // "custom" would shadow the drafts list (/templates/custom).
    if (builtins.has(req.id) || req.id === "custom") throw new TrellisError("template_exists");
    for (const b of req.default_policy_blocks ?? []) {
      if (!blockById(b) || (b === "assigned-reviewer" && !base.records.reviewer))
        throw new TrellisError("policy_block_unknown", [
          {
            path: "/default_policy_blocks",
            message: `no block "${b.slice(0, 40)}" for ${base.summary.id}`,
          },
        ]);
    }
    if (req.payload_schema) {
      const checked = checkPayloadSchema(req.payload_schema);
      if ("issues" in checked)
        throw new TrellisError(
          "payload_schema_invalid",
          checked.issues.map((i) => ({
            path: `/payload_schema${i.path === "/" ? "" : i.path}`,
            message: i.message,
          })),
        );
    }
    return base;
  }

  async function submit(
    ctx: AuditContext,
    req: SubmitCustomTemplateRequest,
  ): Promise<CustomTemplateVersion> {
    check(req);
    return db.transaction(async (tx) => {
      // One version number per id even when two admins submit at once.
      await tx.query("SELECT pg_advisory_xact_lock(hashtext('trellis.custom_templates:' || $1))", [
        req.id,
      ]);
      const { rows: prior } = await tx.query<{ v: number | null; base: string | null }>(
        `SELECT max(version) AS v, (array_agg(base ORDER BY version DESC))[1] AS base
           FROM trellis.custom_templates WHERE id = $1`,
        [req.id],
      );
      const last = prior[0];
      if (last?.base && last.base !== req.base)
        throw new TrellisError("template_exists", [
          {
            path: "/base",
            message: `${req.id} is made from ${last.base}; a version cannot change it`,
          },
        ]);
      const version = Number(last?.v ?? 0) + 1;
      const { rows } = await tx.query<Row>(
        `INSERT INTO trellis.custom_templates (id, version, base, definition, status, submitted_by, submitted_at)
         VALUES ($1, $2, $3, $4, 'draft', $5, $6) RETURNING ${COLUMNS}`,
        [req.id, version, req.base, JSON.stringify(req), ctx.actorId, clock.now()],
      );
      await audit.record(
        ctx,
        {
          action: "template.submit",
          resourceType: "template",
          resourceId: `${req.id}@${version}`,
          diff: { base: req.base, version },
        },
        tx,
      );
      return view(rows[0] as Row);
    });
  }

  async function list(): Promise<CustomTemplateVersion[]> {
    const { rows } = await db.query<Row>(
      `SELECT ${COLUMNS} FROM trellis.custom_templates ORDER BY id, version`,
    );
    return rows.map(view);
  }

  async function decide(
    ctx: AuditContext,
    id: string,
    version: number,
    decision: "approved" | "rejected",
    note?: string,
  ): Promise<CustomTemplateVersion> {
    const decided = await db.transaction(async (tx) => {
      const { rows } = await tx.query<Row>(
        `SELECT ${COLUMNS} FROM trellis.custom_templates WHERE id = $1 AND version = $2 FOR UPDATE`,
        [id, version],
      );
      const row = rows[0];
      if (!row) throw new TrellisError("template_not_found");
      if (row.status !== "draft") throw new TrellisError("template_not_draft");
      if (row.submitted_by === ctx.actorId) throw new TrellisError("steward_must_differ");
      const { rows: updated } = await tx.query<Row>(
        `UPDATE trellis.custom_templates SET status = $3, decided_by = $4, decided_at = $5,
           decision_note = $6 WHERE id = $1 AND version = $2 RETURNING ${COLUMNS}`,
        [id, version, decision, ctx.actorId, clock.now(), note ?? null],
      );
      await audit.record(
        ctx,
        {
          action: decision === "approved" ? "template.approve" : "template.reject",
          resourceType: "template",
          resourceId: `${id}@${version}`,
          diff: { status: { from: "draft", to: decision }, submitted_by: row.submitted_by },
        },
        tx,
      );
      if (decision === "approved")
        await tx.query("SELECT pg_notify($1, $2)", [TEMPLATES_CHANNEL, id]);
      return updated[0] as Row;
    });
    if (decision === "approved") await reload();
    return view(decided);
  }

  async function start() {
    await reload();
    stopListening = await db.listen(TEMPLATES_CHANNEL, () => void reload().catch(() => {}));
  }
  const stop = () => stopListening();

  return { submit, list, decide, start, stop, reload };
}

export type CustomTemplatesService = ReturnType<typeof customTemplatesService>;
