import type { Queryable } from "../../db/db";

export interface CustomPolicyRow {
  id: string;
  effect: "permit" | "forbid";
  cedar: string;
  status: "active" | "pending_approval" | "removed";
  created_at: Date;
  created_by: string;
}

export async function customPolicies(q: Queryable, appId: string): Promise<CustomPolicyRow[]> {
  const { rows } = await q.query<CustomPolicyRow>(
    `SELECT id, effect, cedar, status, created_at, created_by FROM trellis.custom_policies
      WHERE app_id = $1 ORDER BY id`,
    [appId],
  );
  return rows;
}

/** The app's custom policies in effect, as the policy set compiles them. */
export async function activeCustomPolicies(
  q: Queryable,
  appId: string,
): Promise<Array<{ id: string; effect: "permit" | "forbid"; cedar: string }>> {
  return (await customPolicies(q, appId))
    .filter((c) => c.status === "active")
    .map((c) => ({ id: c.id, effect: c.effect, cedar: c.cedar }));
}
