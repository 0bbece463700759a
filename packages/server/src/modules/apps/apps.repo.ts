import type { App } from "@trellis/contracts";
import type { Queryable } from "../../db/db";

interface AppRow {
  id: string;
  name: string;
  template_id: string;
  template_version: number;
  owners: string[];
  payload_schema: Record<string, unknown>;
  retention_days: number;
  status: App["status"];
  environment: App["environment"];
  policy_blocks: string[];
  gov_version: number;
  created_at: Date;
}

/** An app row with its governance version (bumped on every change the gateway must see). */
export interface StoredApp {
  app: App;
  govVersion: number;
}

const toStored = (r: AppRow): StoredApp => ({
  app: {
    id: r.id,
    name: r.name,
    template: r.template_id,
    template_version: r.template_version,
    owners: r.owners,
    payload_schema: r.payload_schema,
    retention_days: r.retention_days,
    status: r.status,
    environment: r.environment,
    policy_blocks: r.policy_blocks,
    created_at: r.created_at.toISOString(),
  },
  govVersion: Number(r.gov_version),
});

export async function insertApp(tx: Queryable, app: App, createdBy: string): Promise<void> {
  await tx.query(
    `INSERT INTO trellis.apps (id, name, template_id, template_version, owners, payload_schema,
       retention_days, status, environment, policy_blocks, created_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      app.id,
      app.name,
      app.template,
      app.template_version,
      app.owners,
      JSON.stringify(app.payload_schema),
      app.retention_days,
      app.status,
      app.environment,
      app.policy_blocks,
      app.created_at,
      createdBy,
    ],
  );
}

const COLUMNS = `id, name, template_id, template_version, owners, payload_schema, retention_days,
  status, environment, policy_blocks, gov_version, created_at`;

export async function findApp(q: Queryable, id: string): Promise<StoredApp | undefined> {
  const { rows } = await q.query<AppRow>(`SELECT ${COLUMNS} FROM trellis.apps WHERE id = $1`, [id]);
  return rows[0] && toStored(rows[0]);
}

/** The current governance versions of some apps (the cache's periodic freshness check). */
export async function govVersions(q: Queryable, ids: string[]): Promise<Map<string, number>> {
  const { rows } = await q.query<{ id: string; gov_version: number }>(
    "SELECT id, gov_version FROM trellis.apps WHERE id = ANY ($1)",
    [ids],
  );
  return new Map(rows.map((r) => [r.id, Number(r.gov_version)]));
}

/** Applies a governance change and bumps the version; returns the new row, or undefined. */
export async function updateGovernance(
  tx: Queryable,
  id: string,
  change: { status?: App["status"]; pausedAt?: Date | null; blocks?: string[] },
): Promise<StoredApp | undefined> {
  const { rows } = await tx.query<AppRow>(
    `UPDATE trellis.apps SET
        status = coalesce($2, status),
        paused_at = CASE WHEN $3::boolean THEN $4::timestamptz ELSE paused_at END,
        policy_blocks = coalesce($5::text[], policy_blocks),
        gov_version = gov_version + 1
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [
      id,
      change.status ?? null,
      change.pausedAt !== undefined,
      change.pausedAt ?? null,
      change.blocks ?? null,
    ],
  );
  return rows[0] && toStored(rows[0]);
}
