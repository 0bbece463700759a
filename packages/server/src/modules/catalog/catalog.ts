import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TemplateSummary } from "@trellis/contracts";
import { Ajv } from "ajv";
import { BLOCK_IDS, type BlockId, type TemplateActions } from "../policy/blocks";
import type { RecordColumns } from "../policy/row-filter";

/** A manifest as templates/manifest.schema.json describes it. */
export interface Manifest {
  id: string;
  version: number;
  title: string;
  description: string;
  retention_days_default: number;
  scopes: Record<string, string>;
  resources: Array<{ name: string; operations: Record<string, string> }>;
  actions: TemplateActions;
  default_policy_blocks: string[];
  records: RecordColumns;
  tables: string[];
  state_machine?: StateMachine;
  cost_card: { bytes_per_record: number; notes: string };
  limits?: { records_per_app: number };
  upgrades?: Upgrade[];
}

/** How one app moves from version `from` to `to`: steps on its data, each scoped by $1 = app id. */
export interface Upgrade {
  from: number;
  to: number;
  summary: string;
  steps: Array<{ description: string; sql: string }>;
}

/** Records that move between states; each move into a state needs that state's action. */
export interface StateMachine {
  states: string[];
  initial: string;
  transitions: Record<string, string[]>;
  actions: Record<string, string>;
}

export interface Template {
  summary: TemplateSummary;
  manifest: Manifest;
  scopes: ReadonlySet<string>;
  actions: TemplateActions;
  defaultBlocks: readonly BlockId[];
  records: RecordColumns;
  migrationsDir: string;
  /** The built-in template whose tables and gateway routes this one uses (its own id if built in). */
  base: string;
  /** Custom templates: the payload schema apps get when they bring none. */
  defaultPayloadSchema?: Record<string, unknown>;
}

export type Catalog = ReadonlyMap<string, Template>;

/** One thing wrong with a template: where (file and JSON pointer or SQL object) and what. */
export interface TemplateProblem {
  file: string;
  path: string;
  message: string;
}

export class TemplateError extends Error {
  constructor(readonly problems: TemplateProblem[]) {
    super(
      `Invalid template:\n${problems.map((p) => `  - ${p.file} ${p.path}: ${p.message}`).join("\n")}`,
    );
    this.name = "TemplateError";
  }
}

/** The manifests' own JSON Schema, beside the templates it describes. */
export const MANIFEST_SCHEMA = fileURLToPath(
  new URL("../../../../../templates/manifest.schema.json", import.meta.url),
);

let validator: ReturnType<Ajv["compile"]> | undefined;
const validateManifest = () => {
  validator ??= new Ajv({ allErrors: true, strict: true }).compile(
    JSON.parse(readFileSync(MANIFEST_SCHEMA, "utf8")),
  );
  return validator;
};

/**
 * Checks one template folder's manifest: its JSON Schema (templates/manifest.schema.json), then
 * the rules a schema cannot say: the id is the folder's name, every operation needs a declared
 * scope, every action is a scope, blocks exist and fit the template, the record table is one
 * of its tables, the state machine is closed, migrations exist. Returns every problem found.
 */
export function checkManifest(dir: string): { manifest?: Manifest; problems: TemplateProblem[] } {
  const file = join(dir, "manifest.json");
  const at = (path: string, message: string): TemplateProblem => ({ file, path, message });
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const message = (err as NodeJS.ErrnoException).code === "ENOENT" ? "is missing" : "is not JSON";
    return { problems: [at("/", message)] };
  }
  const validate = validateManifest();
  if (!validate(doc)) {
    return {
      problems: (validate.errors ?? []).map((e) =>
        at(
          e.instancePath || "/",
          `${e.message ?? "is invalid"}${e.keyword === "additionalProperties" ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ""}`,
        ),
      ),
    };
  }
  const m = doc as Manifest;
  const problems: TemplateProblem[] = [];
  const folder = basename(resolve(dir));
  if (m.id !== folder) problems.push(at("/id", `is "${m.id}" but the folder is "${folder}"`));
  for (const [i, r] of m.resources.entries()) {
    for (const [op, scope] of Object.entries(r.operations)) {
      if (!(scope in m.scopes))
        problems.push(
          at(
            `/resources/${i}/operations/${op}`,
            `needs scope "${scope}", which the template does not declare`,
          ),
        );
    }
  }
  for (const kind of ["read", "write", "creates"] as const) {
    for (const a of m.actions[kind]) {
      if (!(a in m.scopes))
        problems.push(at(`/actions/${kind}`, `action "${a}" has no scope of its name`));
    }
  }
  for (const a of m.actions.creates) {
    if (!m.actions.write.includes(a))
      problems.push(at("/actions/creates", `"${a}" is not a write action`));
  }
  for (const a of m.actions.reviews ?? []) {
    if (!m.actions.write.includes(a) || m.actions.creates.includes(a))
      problems.push(at("/actions/reviews", `"${a}" is not a write action on existing records`));
    if (!(a in m.scopes)) problems.push(at("/actions/reviews", `action "${a}" has no scope`));
  }
  if ((m.actions.reviews ?? []).length > 0 && !m.records.reviewer)
    problems.push(at("/actions/reviews", "reviewer actions need records.reviewer"));
  for (const b of m.default_policy_blocks) {
    if (!(BLOCK_IDS as readonly string[]).includes(b))
      problems.push(at("/default_policy_blocks", `no policy block "${b}"`));
    if (b === "assigned-reviewer" && !m.records.reviewer)
      problems.push(at("/default_policy_blocks", "assigned-reviewer needs records.reviewer"));
  }
  if (!m.tables.includes(m.records.table))
    problems.push(at("/records/table", `"${m.records.table}" is not one of the template's tables`));
  const sm = m.state_machine;
  if (sm) {
    if (!sm.states.includes(sm.initial))
      problems.push(at("/state_machine/initial", "is not a state"));
    for (const [from, tos] of Object.entries(sm.transitions)) {
      for (const s of [from, ...tos]) {
        if (!sm.states.includes(s))
          problems.push(at(`/state_machine/transitions/${from}`, `"${s}" is not a state`));
      }
      for (const to of tos) {
        const action = sm.actions[to];
        if (!action)
          problems.push(at(`/state_machine/actions`, `no action moves a record into "${to}"`));
        else if (!m.actions.write.includes(action) || m.actions.creates.includes(action))
          problems.push(
            at(`/state_machine/actions/${to}`, `"${action}" is not a write action on records`),
          );
      }
    }
    for (const s of Object.keys(sm.actions)) {
      if (!sm.states.includes(s))
        problems.push(at(`/state_machine/actions/${s}`, `"${s}" is not a state`));
    }
  }
  // Versions: every version after the first has exactly one upgrade from the one before, and
  // every step names the app ($1): an upgrade never touches another app's rows.
  const ups = m.upgrades ?? [];
  for (let v = 2; v <= m.version; v++) {
    const n = ups.filter((u) => u.to === v && u.from === v - 1).length;
    if (n !== 1) problems.push(at("/upgrades", `needs one upgrade from ${v - 1} to ${v}`));
  }
  for (const [i, u] of ups.entries()) {
    if (u.to !== u.from + 1 || u.to > m.version)
      problems.push(
        at(
          `/upgrades/${i}`,
          `from ${u.from} to ${u.to} is not a step to a version up to ${m.version}`,
        ),
      );
    for (const [j, step] of u.steps.entries()) {
      if (!/\$1(?!\d)/.test(step.sql))
        problems.push(
          at(`/upgrades/${i}/steps/${j}/sql`, "must scope its rows to the app with $1"),
        );
      if (/;\s*\S/.test(step.sql))
        problems.push(at(`/upgrades/${i}/steps/${j}/sql`, "must be one statement"));
    }
  }
  const migrations = join(dir, "migrations");
  if (!existsSync(migrations) || !readdirSync(migrations).some((f) => f.endsWith(".sql")))
    problems.push({ file: migrations, path: "/", message: "has no .sql migration" });
  return problems.length > 0 ? { problems } : { manifest: m, problems };
}

export function toTemplate(dir: string, m: Manifest): Template {
  return {
    summary: {
      id: m.id,
      version: m.version,
      title: m.title,
      description: m.description,
      retention_days_default: m.retention_days_default,
      scopes: Object.entries(m.scopes).map(([name, description]) => ({ name, description })),
      resources: m.resources.map((r) => ({ name: r.name, operations: Object.keys(r.operations) })),
      base: m.id,
    },
    manifest: m,
    scopes: new Set(Object.keys(m.scopes)),
    actions: m.actions,
    defaultBlocks: m.default_policy_blocks as BlockId[],
    records: m.records,
    migrationsDir: join(dir, "migrations"),
    base: m.id,
  };
}

/**
 * Reads every `templates/<id>/manifest.json` and checks it (checkManifest). Any problem in any
 * template stops start-up, with every problem listed. The SQL side (app_id, FORCE RLS, bounded
 * text) is checked after migrations, by template-check.ts.
 */
export function loadCatalog(templatesDir: string): Map<string, Template> {
  const out = new Map<string, Template>();
  const problems: TemplateProblem[] = [];
  for (const entry of readdirSync(templatesDir).sort()) {
    const dir = join(templatesDir, entry);
    if (!statSync(dir).isDirectory()) continue;
    const checked = checkManifest(dir);
    problems.push(...checked.problems);
    if (checked.manifest) out.set(checked.manifest.id, toTemplate(dir, checked.manifest));
  }
  if (problems.length > 0) throw new TemplateError(problems);
  return out;
}
