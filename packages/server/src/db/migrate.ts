import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Db } from "./db";

/** The core schema's migrations (roles, claims helpers, control tables, the audit log). */
export const CORE_MIGRATIONS = fileURLToPath(new URL("../../migrations", import.meta.url));

export interface MigrationSource {
  /** `core` or `template:<id>`: names are unique within a scope. */
  scope: string;
  dir: string;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

interface Migration {
  scope: string;
  name: string;
  sql: string;
  checksum: string;
}

function load(sources: MigrationSource[]): Migration[] {
  return sources.flatMap(({ scope, dir }) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".sql"))
      .sort()
      .map((name) => {
        const sql = readFileSync(join(dir, name), "utf8");
        return { scope, name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
      }),
  );
}

const GRANT_CREATE = `DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trellis_gateway') THEN
    GRANT CREATE ON SCHEMA trellis TO trellis_gateway;
  END IF;
END $$;`;
const REVOKE_CREATE = `DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trellis_gateway') THEN
    REVOKE CREATE ON SCHEMA trellis FROM trellis_gateway;
  END IF;
END $$;`;

// Any constant will do; it only has to be the same for every Trellis process on one database.
const MIGRATION_LOCK = 7_311_2024;

/**
 * Applies pending migrations in order, each in its own transaction with its checksum recorded.
 * An applied migration whose file changed stops start-up: history is never rewritten silently.
 * Concurrent servers on one PostgreSQL serialize on an advisory lock.
 * Returns the names applied by this call.
 */
export async function migrate(db: Db, sources: MigrationSource[]): Promise<string[]> {
  const migrations = load(sources);
  // Under the lock too: two servers starting on a fresh database would otherwise race on the
  // catalog (IF NOT EXISTS is not safe against a concurrent creator).
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(`
      CREATE SCHEMA IF NOT EXISTS trellis;
      CREATE TABLE IF NOT EXISTS trellis.schema_migrations (
        scope text NOT NULL, name text NOT NULL, checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, name));`);
  });
  const applied: string[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      const { rows } = await tx.query<{ checksum: string }>(
        "SELECT checksum FROM trellis.schema_migrations WHERE scope = $1 AND name = $2",
        [m.scope, m.name],
      );
      const prior = rows[0];
      if (prior) {
        if (prior.checksum !== m.checksum) {
          throw new MigrationError(
            `Migration ${m.scope}/${m.name} was changed after it was applied (recorded sha256 ${prior.checksum.slice(0, 12)}…, file ${m.checksum.slice(0, 12)}…). Restore the original file and add a new migration for the change.`,
          );
        }
        return false;
      }
      // Template migrations give their gateway functions to trellis_gateway; a non-superuser
      // owner can only do that while the new owner may create in the schema. That privilege
      // exists only inside this transaction, never for the running data path.
      await tx.exec(GRANT_CREATE);
      await tx.exec(m.sql);
      await tx.exec(REVOKE_CREATE);
      await tx.query(
        "INSERT INTO trellis.schema_migrations (scope, name, checksum) VALUES ($1, $2, $3)",
        [m.scope, m.name, m.checksum],
      );
      return true;
    });
    if (done) applied.push(`${m.scope}/${m.name}`);
  }
  return applied;
}
