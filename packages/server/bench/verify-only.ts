/**
 * `audit verify` alone, for profiling the verifier without the rest of the bench:
 *   npx tsx packages/server/bench/verify-only.ts setup   # a fresh database with N events, integrated
 *   npx tsx packages/server/bench/verify-only.ts         # RUNS verifications of it, events/s each
 *   npx tsx packages/server/bench/verify-only.ts drop    # removes the database
 * N (default 200000), RUNS (default 2), WORKERS (worker threads, default 0: all in this one); BENCH_DATABASE_URL names the server (default the local
 * test server); the database is `trellis_verify_bench` on it. Events come from 50 subjects.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import { openPostgres } from "../src/db/postgres";
import { verifyLog } from "../src/modules/transparency/verify-log";

const base = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const name = "trellis_verify_bench";
const url = new URL(base);
url.pathname = `/${name}`;
const mode = process.argv[2] ?? "run";

if (mode === "setup" || mode === "drop") {
  const admin = new pg.Client(base);
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  if (mode === "setup") await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
}
if (mode === "setup") {
  const db = await openPostgres(url.toString(), 20);
  const dataDir = mkdtempSync(join(tmpdir(), "trellis-verify-bench-"));
  const config = parseConfig({
    DATABASE_URL: url.toString(),
    TRELLIS_ADMIN_TOKEN: `bench-${randomBytes(24).toString("hex")}`,
    TRELLIS_MASTER_KEY: randomBytes(32).toString("base64"),
    TRELLIS_DATA_DIR: dataDir,
    TRELLIS_LOG_LEVEL: "warn",
    TRELLIS_AUDIT_MERGE_DELAY_MS: "60000",
  });
  const app = await buildApp({ config, db });
  await app.transparency.stop();
  const n = Number(process.env.N ?? 200_000);
  await db.query(
    `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
       resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id)
     SELECT 'evt_b' || g, now(), 'bench-user-' || (g % 50), 'app_user', 'submission.create',
            'submission', md5(g::text), 'app_bench', 'tok_bench', ARRAY['owner-write.create'],
            'allowed', 'req_' || g
       FROM generate_series(1, $1) g`,
    [n],
  );
  const t0 = performance.now();
  for (;;) if (!(await app.transparency.tick())) break;
  console.log(
    `integrated ${n} events: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} events/s`,
  );
  await app.close();
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
} else if (mode === "run") {
  const db = await openPostgres(url.toString(), 20);
  for (let i = 0; i < Number(process.env.RUNS ?? 2); i++) {
    const t0 = performance.now();
    const count = Number(process.env.WORKERS ?? 0);
    const r = await verifyLog(db, count > 0 ? { workers: { url: url.toString(), count } } : {});
    const rate = r.events / ((performance.now() - t0) / 1000);
    console.log(
      `verify ${r.ok ? "ok" : "FAILED"}: ${r.events} events, ${rate.toFixed(0)} events/s`,
    );
  }
  await db.close();
}
