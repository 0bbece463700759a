import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { TemplateSummary } from "@trellis/contracts";
import { z } from "zod";
import { BLOCK_IDS, type BlockId, type TemplateActions } from "../policy/blocks";
import type { RecordColumns } from "../policy/row-filter";

const Manifest = z.strictObject({
  id: z.string().regex(/^[a-z][a-z0-9-]{1,40}$/),
  version: z.number().int().min(1),
  title: z.string().min(1).max(100),
  description: z.string().min(1).max(2000),
  retention_days_default: z.number().int().min(1).max(3650),
  scopes: z.record(z.string().regex(/^[a-z]+(:[a-z]+)?$/), z.string().min(1)),
  resources: z.array(z.strictObject({ name: z.string(), operations: z.array(z.string()) })).min(1),
  /** Cedar actions: each is also the scope a token needs for it. */
  actions: z.strictObject({
    read: z.array(z.string()).min(1),
    write: z.array(z.string()),
    creates: z.array(z.string()),
  }),
  default_policy_blocks: z.array(z.enum(BLOCK_IDS as [BlockId, ...BlockId[]])).min(1),
  /** Where records keep what policy blocks look at (explain spells out the filter with these). */
  records: z.strictObject({
    table: z.string().regex(/^trellis\.[a-z_]+$/),
    owner: z.string().regex(/^[a-z_]+$/),
    labels: z.string().regex(/^[a-z_]+$/),
    reviewer: z
      .string()
      .regex(/^[a-z_]+$/)
      .nullable(),
  }),
});

export interface Template {
  summary: TemplateSummary;
  scopes: ReadonlySet<string>;
  actions: TemplateActions;
  defaultBlocks: readonly BlockId[];
  records: RecordColumns;
  migrationsDir: string;
}

export type Catalog = ReadonlyMap<string, Template>;

/**
 * Reads every `templates/<id>/manifest.json`. A malformed manifest stops start-up with the
 * template's folder named. (The full manifest format and `trellis template check` come with
 * the catalog issue; this reads the fields the foundation needs.)
 */
export function loadCatalog(templatesDir: string): Catalog {
  const out = new Map<string, Template>();
  for (const entry of readdirSync(templatesDir).sort()) {
    const dir = join(templatesDir, entry);
    if (!statSync(dir).isDirectory()) continue;
    const parsed = Manifest.safeParse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
    if (!parsed.success) {
      throw new Error(`Template ${dir}/manifest.json is invalid: ${parsed.error.message}`);
    }
    const m = parsed.data;
    if (m.id !== entry) throw new Error(`Template folder ${entry} holds manifest id ${m.id}`);
    const actionNames = [...m.actions.read, ...m.actions.write];
    const missing = actionNames.filter((a) => !(a in m.scopes));
    const strayCreates = m.actions.creates.filter((a) => !m.actions.write.includes(a));
    if (missing.length > 0 || strayCreates.length > 0) {
      throw new Error(
        `Template ${dir}/manifest.json: every action needs a scope of its name (${missing.join(", ") || "ok"}) and every "creates" action must be a write (${strayCreates.join(", ") || "ok"})`,
      );
    }
    out.set(m.id, {
      summary: {
        id: m.id,
        version: m.version,
        title: m.title,
        description: m.description,
        retention_days_default: m.retention_days_default,
        scopes: Object.entries(m.scopes).map(([name, description]) => ({ name, description })),
        resources: m.resources,
      },
      scopes: new Set(Object.keys(m.scopes)),
      actions: m.actions,
      defaultBlocks: m.default_policy_blocks,
      records: m.records,
      migrationsDir: join(dir, "migrations"),
    });
  }
  return out;
}
