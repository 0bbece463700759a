import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { compileAppPolicy, decide } from "../src/modules/policy/app-policy";
import { BLOCK_IDS, type BlockId, type TemplateActions } from "../src/modules/policy/blocks";
import { PolicyEngine, type Principal, type RecordResource } from "../src/modules/policy/engine";
import { type RecordColumns, rowFilterSql } from "../src/modules/policy/row-filter";
import { asGateway, createApp, DATASTORES, startTestApp, type TestApp } from "./harness";

/**
 * Equivalence (issue 3, item 7): for every policy block, over many random principals, records
 * and block combinations, Cedar's decision for one record equals what PostgreSQL row-level
 * security does with the same claims — for reads (is the row visible), deletes (can the row be
 * updated) and creates (is the insert accepted) — and the SQL filter `explain` shows selects
 * exactly the rows RLS lets through. On PGlite and on PostgreSQL.
 */
const SUBS = ["alice", "bob", "carol"];
const LABELS = ["team=hr", "team=it", "region=eu"];
const SCOPES = ["read", "read:all", "admin:read", "create", "delete"];
const ENVS = ["dev", "staging", "prod"] as const;
const ACTIONS: TemplateActions = {
  read: ["read"],
  write: ["create", "delete"],
  creates: ["create"],
};
const COLS: RecordColumns = {
  table: "trellis.form_intake_submissions",
  owner: "submitter_id",
  labels: "labels",
  reviewer: "reviewer_id",
};
const RUNS = Number(process.env.EQUIVALENCE_RUNS ?? 25);

const sorted = (xs: readonly string[]) => [...xs].sort();
const principalArb = fc.record({
  sub: fc.constantFrom(...SUBS),
  scopes: fc.subarray(SCOPES).map(sorted),
  labels: fc.subarray(LABELS).map(sorted),
  roles: fc.constant([] as string[]),
  environment: fc.constantFrom(...ENVS),
});
const recordArb = fc.record({
  owner: fc.constantFrom(...SUBS),
  labels: fc.subarray(LABELS).map(sorted),
  reviewer: fc.option(fc.constantFrom(...SUBS), { nil: null }),
});

describe.each(DATASTORES)("Cedar decisions equal row-level security on %s", (kind) => {
  let t: TestApp;
  let appId: string;
  const engine = new PolicyEngine();
  engine.addTemplate("form-intake", ACTIONS);
  const records: Array<RecordResource & { reviewer: string | null }> = [];

  beforeAll(async () => {
    t = await startTestApp(kind);
    appId = await createApp(t, "Equivalence");
    // A fixed, varied population of rows, written as the owner (no RLS): every combination of
    // owner, labels and reviewer the generators can produce is likely among 60.
    const sample = fc.sample(recordArb, { numRuns: 60, seed: 42 });
    for (const [i, r] of sample.entries()) {
      const id = `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`;
      await t.db.query(
        `INSERT INTO trellis.form_intake_submissions
           (id, app_id, form_id, submitter_id, payload, created_at, labels, reviewer_id)
         VALUES ($1, $2, 'default', $3, '{}', now(), $4, $5)`,
        [id, appId, r.owner, r.labels, r.reviewer],
      );
      records.push({ id, ...r, state: "live" });
    }
  });
  afterAll(() => t?.close());

  const compile = (blocks: BlockId[]) => {
    const p = compileAppPolicy(engine, {
      appId: `eq:${blocks.join(",")}`,
      templateId: "form-intake",
      actions: ACTIONS,
      version: 1,
      blocks,
      customs: [],
    });
    if ("problems" in p) throw new Error(JSON.stringify(p.problems));
    return p;
  };

  it.each(BLOCK_IDS)(
    "block %s",
    async (block) => {
      await fc.assert(
        fc.asyncProperty(
          principalArb,
          fc.subarray([...BLOCK_IDS]),
          fc.constantFrom("dev", "prod"),
          fc.option(fc.constantFrom(...SUBS), { nil: null }),
          async (p: Principal, extra, appEnv, newReviewer) => {
            const blocks = [...new Set<BlockId>([block, ...extra])];
            const policy = compile(blocks);
            const claims = {
              app: appId,
              sub: p.sub,
              scopes: p.scopes.join(" "),
              labels: p.labels.join(" "),
              env: p.environment,
              appEnv,
              blocks: blocks.join(" "),
            };
            const cedarSays = (action: string, r: RecordResource) =>
              decide(engine, policy, {
                principal: p,
                action,
                resource: r,
                app: { id: appId, environment: appEnv, template: "form-intake" },
              }).decision === "allow";

            // read: visible under RLS ⇔ Cedar allows read
            const visible = await asGateway(t.db, claims, (q) =>
              q.query<{ id: string }>(
                "SELECT id FROM trellis.form_intake_submissions WHERE app_id = $1",
                [appId],
              ),
            );
            const seen = new Set(visible.rows.map((r) => r.id));
            const cedarRead = new Set(records.filter((r) => cedarSays("read", r)).map((r) => r.id));
            expect(sorted([...seen])).toEqual(sorted([...cedarRead]));

            // delete: updatable under RLS ⇔ Cedar allows delete
            const updated = await asGateway(t.db, claims, (q) =>
              q.query<{ id: string }>(
                "UPDATE trellis.form_intake_submissions SET deleted_at = now() WHERE app_id = $1 RETURNING id",
                [appId],
              ),
            );
            const cedarDelete = records.filter((r) => cedarSays("delete", r)).map((r) => r.id);
            expect(sorted(updated.rows.map((r) => r.id))).toEqual(sorted(cedarDelete));

            // explain's SQL filter selects exactly those rows (run as the owner, no RLS)
            for (const [action, expected] of [
              ["read", [...cedarRead]],
              ["delete", cedarDelete],
            ] as const) {
              const filter = rowFilterSql(policy, appId, appEnv, p, action, COLS);
              const { rows } = await t.db.query<{ id: string }>(
                `SELECT id FROM trellis.form_intake_submissions WHERE ${filter}`,
              );
              expect(sorted(rows.map((r) => r.id)), `${action}: ${filter}`).toEqual(
                sorted(expected),
              );
            }

            // create: the insert is accepted ⇔ Cedar allows create of that record
            const accepted = await asGateway(t.db, claims, (q) =>
              q
                .query(
                  `INSERT INTO trellis.form_intake_submissions
                   (id, app_id, form_id, submitter_id, payload, created_at, labels, reviewer_id)
                 VALUES (gen_random_uuid(), $1, 'default', $2, '{}', now(), $3, $4)`,
                  [appId, p.sub, p.labels, newReviewer],
                )
                .then(
                  () => true,
                  (err) => {
                    if (sqlState(err) === "42501") return false;
                    throw err;
                  },
                ),
            );
            const cedarCreate = cedarSays("create", {
              id: "new",
              owner: p.sub,
              labels: p.labels,
              reviewer: newReviewer,
              state: "live",
            });
            expect(accepted).toBe(cedarCreate);
          },
        ),
        { numRuns: RUNS, seed: 7 + BLOCK_IDS.indexOf(block) },
      );
    },
    120_000,
  );
});
