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
  created_at: Date;
}

const toApp = (r: AppRow): App => ({
  id: r.id,
  name: r.name,
  template: r.template_id,
  template_version: r.template_version,
  owners: r.owners,
  payload_schema: r.payload_schema,
  retention_days: r.retention_days,
  status: r.status,
  created_at: r.created_at.toISOString(),
});

export async function insertApp(tx: Queryable, app: App, createdBy: string): Promise<void> {
  await tx.query(
    `INSERT INTO trellis.apps (id, name, template_id, template_version, owners, payload_schema,
       retention_days, status, created_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      app.id,
      app.name,
      app.template,
      app.template_version,
      app.owners,
      JSON.stringify(app.payload_schema),
      app.retention_days,
      app.status,
      app.created_at,
      createdBy,
    ],
  );
}

export async function findApp(q: Queryable, id: string): Promise<App | undefined> {
  const { rows } = await q.query<AppRow>(
    `SELECT id, name, template_id, template_version, owners, payload_schema, retention_days,
            status, created_at FROM trellis.apps WHERE id = $1`,
    [id],
  );
  return rows[0] && toApp(rows[0]);
}
