/**
 * What the audit-log scripts outside the run share (`verify-only.ts`, `sequencer-cost.ts`): the
 * real app on a bench database with its sequencer stopped, so only the script's own ticks
 * integrate, and events stored straight into the log as the gateway writes them.
 */
import { randomBytes } from "node:crypto";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import type { Db } from "../src/db/db";

/** The app on `db` (at `url`), data in `dataDir`, with its sequencer stopped. */
export async function appWithSequencerStopped(db: Db, url: string, dataDir: string) {
  const app = await buildApp({
    config: parseConfig({
      DATABASE_URL: url,
      TRELLIS_ADMIN_TOKEN: `bench-${randomBytes(24).toString("hex")}`,
      TRELLIS_MASTER_KEY: randomBytes(32).toString("base64"),
      TRELLIS_DATA_DIR: dataDir,
      TRELLIS_LOG_LEVEL: "warn",
      TRELLIS_AUDIT_MERGE_DELAY_MS: "60000",
    }),
    db,
  });
  await app.transparency.stop();
  return app;
}

/** `n` events numbered from `first`, from 50 subjects, not yet in the tree. */
export async function storeEvents(db: Db, n: number, first = 1): Promise<void> {
  await db.query(
    `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
       resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id)
     SELECT 'evt_b' || g, now(), 'bench-user-' || (g % 50), 'app_user', 'submission.create',
            'submission', md5(g::text), 'app_bench', 'tok_bench', ARRAY['owner-write.create'],
            'allowed', 'req_' || g
       FROM generate_series($2::int, $2::int + $1::int - 1) g`,
    [n, first],
  );
}
