import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TemplateExport } from "@trellis/contracts";
import { MANIFEST_SCHEMA, type Template } from "../catalog/catalog";
import { BLOCKS } from "../policy/blocks";
import { cedarSchema } from "../policy/engine";

/** A template's migrations in order, with the checksum `migrate` records for each. */
export function templateDdl(t: Template): TemplateExport["ddl"] {
  return readdirSync(t.migrationsDir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((name) => {
      const sql = readFileSync(join(t.migrationsDir, name), "utf8");
      return { name, sha256: createHash("sha256").update(sql).digest("hex"), sql };
    });
}

let manifestSchema: Record<string, unknown> | undefined;

/**
 * Everything about a template another instance (or a reviewer) needs: the manifest and its
 * JSON Schema, the DDL with checksums, every policy block it can use with its Cedar text, the
 * Cedar schema, and the retention default.
 */
export function exportTemplate(t: Template): TemplateExport {
  manifestSchema ??= JSON.parse(readFileSync(MANIFEST_SCHEMA, "utf8")) as Record<string, unknown>;
  const usable = BLOCKS.filter((b) => b.id !== "assigned-reviewer" || t.records.reviewer);
  return {
    format: "trellis.template-export/1",
    id: t.summary.id,
    version: t.summary.version,
    retention_days_default: t.summary.retention_days_default,
    manifest: t.manifest as unknown as Record<string, unknown>,
    manifest_schema: manifestSchema,
    ddl: templateDdl(t),
    policy_blocks: usable.map((b) => ({
      id: b.id,
      title: b.title,
      summary: b.summary,
      effect: b.effect,
      default: t.defaultBlocks.includes(b.id),
      cedar: b.cedar(t.actions),
      sql: b.sql,
    })),
    cedar_schema: cedarSchema(t.actions),
  };
}
