import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildApp, TEMPLATES_DIR } from "../src/app";
import { parseConfig } from "../src/config/config";
import { openPglite } from "../src/db/pglite";
import { TemplateError } from "../src/modules/catalog/catalog";
import { checkTemplateDir } from "../src/modules/catalog/template-check";

/**
 * Issue 4, item 1 (started): a template is checked before it can serve — its manifest against
 * templates/manifest.schema.json and the rules a schema cannot say, then its migrations on a
 * scratch database for the SQL safety rules. Each bad template below is a copy of form-intake
 * with one thing broken, and must be refused with that thing named.
 */
const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A copy of form-intake in a fresh catalog folder, changed by `edit`. */
function variant(
  edit: (dir: string, manifest: Record<string, unknown>) => void,
  folder = "form-intake",
): string {
  const root = mkdtempSync(join(tmpdir(), "trellis-templates-"));
  roots.push(root);
  const dir = join(root, folder);
  cpSync(join(TEMPLATES_DIR, "form-intake"), dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  edit(dir, manifest);
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  return dir;
}
const addMigration = (dir: string, sql: string) =>
  writeFileSync(join(dir, "migrations", "0099_change.sql"), sql);

describe("template check", () => {
  it.each(["form-intake", "event-log", "directory", "ttl-cache", "bookings", "approval-queue"])(
    "%s, as shipped, passes",
    async (id) => {
      expect(await checkTemplateDir(join(TEMPLATES_DIR, id))).toEqual([]);
    },
    30_000,
  );

  it.each([
    [
      "a manifest without its cost card",
      () => variant((_d, m) => delete m.cost_card),
      "/",
      /required property 'cost_card'/,
    ],
    [
      "an unknown manifest field",
      () => variant((_d, m) => (m.owner_email = "x@example.org")),
      "/",
      /additional properties \(owner_email\)/,
    ],
    [
      "an operation whose scope the template does not declare",
      () =>
        variant((_d, m) => {
          const [first] = m.resources as Array<{ operations: Record<string, string> }>;
          if (first) first.operations.archive = "archive";
        }),
      "/resources/0/operations/archive",
      /needs scope "archive"/,
    ],
    [
      "a manifest id that is not its folder's name",
      () => variant(() => {}, "intake-copy"),
      "/id",
      /folder is "intake-copy"/,
    ],
    [
      "an unknown default policy block",
      () => variant((_d, m) => (m.default_policy_blocks = ["owner-read", "everyone"])),
      "/default_policy_blocks",
      /no policy block "everyone"/,
    ],
    [
      "an unbounded text column",
      () =>
        variant((d) =>
          addMigration(d, "ALTER TABLE trellis.form_intake_submissions ADD COLUMN note text;"),
        ),
      "trellis.form_intake_submissions",
      /column note is unbounded text/,
    ],
    [
      "row-level security that is not forced",
      () =>
        variant((d) =>
          addMigration(
            d,
            "ALTER TABLE trellis.form_intake_submissions NO FORCE ROW LEVEL SECURITY;",
          ),
        ),
      "trellis.form_intake_submissions",
      /not forced/,
    ],
    [
      "a data table without app_id",
      () =>
        variant((d, m) => {
          (m.tables as string[]).push("trellis.form_intake_notes");
          addMigration(
            d,
            `CREATE TABLE trellis.form_intake_notes (id uuid PRIMARY KEY, note text CHECK (length(note) < 100));
             ALTER TABLE trellis.form_intake_notes ENABLE ROW LEVEL SECURITY;
             ALTER TABLE trellis.form_intake_notes FORCE ROW LEVEL SECURITY;`,
          );
        }),
      "trellis.form_intake_notes",
      /has no app_id/,
    ],
    [
      "a table the manifest does not list",
      () =>
        variant((d) =>
          addMigration(
            d,
            "CREATE TABLE trellis.form_intake_hidden (app_id text NOT NULL REFERENCES trellis.apps (id));",
          ),
        ),
      "trellis.form_intake_hidden",
      /not listed in tables/,
    ],
    [
      "a record column the table lacks",
      () =>
        variant((_d, m) => {
          (m.records as Record<string, unknown>).owner = "author";
        }),
      "trellis.form_intake_submissions",
      /records names column author, which the table lacks/,
    ],
    [
      "a table the control plane cannot reach (export would miss its rows)",
      () => variant((d) => rmSync(join(d, "migrations", "0003_control_plane.sql"))),
      "trellis.form_intake_submissions",
      /lacks the control plane's policies/,
    ],
    [
      "a migration that fails",
      () => variant((d) => addMigration(d, "ALTER TABLE trellis.nope ADD COLUMN x int;")),
      "/",
      /a migration fails/,
    ],
  ])(
    "refuses %s, naming it",
    async (_name, make, path, message) => {
      const problems = await checkTemplateDir(make());
      expect(problems.length).toBeGreaterThan(0);
      const hit = problems.find((p) => p.path === path && message.test(p.message));
      expect(hit, JSON.stringify(problems, null, 2)).toBeDefined();
    },
    30_000,
  );

  it("the server refuses to start on an unsafe template, naming the problem", async () => {
    const dir = variant((d) =>
      addMigration(d, "ALTER TABLE trellis.form_intake_submissions NO FORCE ROW LEVEL SECURITY;"),
    );
    const db = await openPglite();
    const dataDir = mkdtempSync(join(tmpdir(), "trellis-test-"));
    roots.push(dataDir);
    try {
      const config = parseConfig({
        TRELLIS_ADMIN_TOKEN: "x".repeat(40),
        TRELLIS_DATA_DIR: dataDir,
        TRELLIS_LOG_LEVEL: "silent",
      });
      const err = await buildApp({ config, db, templatesDir: join(dir, "..") }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TemplateError);
      expect((err as Error).message).toContain(
        "trellis.form_intake_submissions: row-level security is not forced",
      );
    } finally {
      await db.close();
    }
  }, 30_000);

  it("the server refuses to start on an invalid manifest", async () => {
    const dir = variant((_d, m) => (m.retention_days_default = 0));
    const db = await openPglite();
    try {
      const config = parseConfig({
        TRELLIS_ADMIN_TOKEN: "x".repeat(40),
        TRELLIS_LOG_LEVEL: "silent",
      });
      const err = await buildApp({ config, db, templatesDir: join(dir, "..") }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TemplateError);
      expect((err as Error).message).toContain("/retention_days_default: must be >= 1");
    } finally {
      await db.close();
    }
  });
});
