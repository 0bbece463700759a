import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CORE_MIGRATIONS } from "../src/app";
import { MigrationError, migrate } from "../src/db/migrate";
import { openPostgres } from "../src/db/postgres";
import { DATASTORES, type FreshDb, freshDb } from "./harness";

const coreFiles = readdirSync(CORE_MIGRATIONS)
  .filter((f) => f.endsWith(".sql"))
  .sort()
  .map((f) => `core/${f}`);

describe.each(DATASTORES)("migrations on %s", (kind) => {
  let fresh: FreshDb;
  let dir: string;
  beforeEach(async () => {
    fresh = await freshDb(kind);
    dir = mkdtempSync(join(tmpdir(), "trellis-mig-"));
  });
  afterEach(async () => {
    await fresh.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("applies pending files in order once, recording a checksum per file", async () => {
    writeFileSync(join(dir, "0001_a.sql"), "CREATE TABLE trellis.m_test (x int);");
    writeFileSync(join(dir, "0002_b.sql"), "INSERT INTO trellis.m_test VALUES (1);");
    expect(await migrate(fresh.db, [{ scope: "t", dir }])).toEqual([
      "t/0001_a.sql",
      "t/0002_b.sql",
    ]);
    expect(await migrate(fresh.db, [{ scope: "t", dir }])).toEqual([]);
    const { rows } = await fresh.db.query<{ name: string; checksum: string }>(
      "SELECT name, checksum FROM trellis.schema_migrations ORDER BY name",
    );
    expect(rows.map((r) => r.name)).toEqual(["0001_a.sql", "0002_b.sql"]);
    for (const r of rows) expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect((await fresh.db.query("SELECT x FROM trellis.m_test")).rows).toEqual([{ x: 1 }]);
  });

  it("stops when an applied migration was changed", async () => {
    writeFileSync(join(dir, "0001_a.sql"), "CREATE TABLE trellis.m_test (x int);");
    await migrate(fresh.db, [{ scope: "t", dir }]);
    writeFileSync(join(dir, "0001_a.sql"), "CREATE TABLE trellis.m_test (x int, y int);");
    await expect(migrate(fresh.db, [{ scope: "t", dir }])).rejects.toThrow(MigrationError);
    await expect(migrate(fresh.db, [{ scope: "t", dir }])).rejects.toThrow(
      /was changed after it was applied/,
    );
  });

  it("rolls back a failing migration entirely and records nothing", async () => {
    writeFileSync(
      join(dir, "0001_bad.sql"),
      "CREATE TABLE trellis.m_half (x int); SELECT no_such_function();",
    );
    await expect(migrate(fresh.db, [{ scope: "t", dir }])).rejects.toThrow();
    const t = await fresh.db.query("SELECT to_regclass('trellis.m_half') AS t");
    expect(t.rows).toEqual([{ t: null }]);
    const rec = await fresh.db.query("SELECT * FROM trellis.schema_migrations WHERE scope = 't'");
    expect(rec.rows).toEqual([]);
  });

  it("two servers migrating one fresh database at once both succeed, each file applied once", async () => {
    writeFileSync(join(dir, "0001_a.sql"), "CREATE TABLE trellis.m_test (x int);");
    const sources = [
      { scope: "core", dir: CORE_MIGRATIONS },
      { scope: "t", dir },
    ];
    const second = kind === "postgres" ? await openPostgres(fresh.url as string, 2) : fresh.db;
    try {
      const [a, b] = await Promise.all([migrate(fresh.db, sources), migrate(second, sources)]);
      expect([...a, ...b].sort()).toEqual([...coreFiles, "t/0001_a.sql"]);
    } finally {
      if (second !== fresh.db) await second.close();
    }
  });

  it("the core schema migrates on a fresh database and is idempotent", async () => {
    expect(await migrate(fresh.db, [{ scope: "core", dir: CORE_MIGRATIONS }])).toEqual(coreFiles);
    expect(coreFiles[0]).toBe("core/0001_core.sql");
    expect(await migrate(fresh.db, [{ scope: "core", dir: CORE_MIGRATIONS }])).toEqual([]);
  });
});
