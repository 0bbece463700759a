/**
 * `audit verify` alone, for profiling the verifier without the rest of the bench:
 *   npx tsx packages/server/bench/verify-only.ts setup   # a fresh database with N events, integrated
 *   npx tsx packages/server/bench/verify-only.ts         # RUNS verifications of it, events/s each
 *   npx tsx packages/server/bench/verify-only.ts drop    # removes the database
 * N (default 200000), RUNS (default 2), WORKERS (worker threads, default 0: all in this one); BENCH_DATABASE_URL names the server (default the local
 * test server); the database is `trellis_verify_bench` on it. Events come from 50 subjects.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openPostgres } from "../src/db/postgres";
import { verifyLog } from "../src/modules/transparency/verify-log";
import { appWithSequencerStopped, storeEvents } from "./audit-fixture";

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
  const app = await appWithSequencerStopped(db, url.toString(), dataDir);
  const n = Number(process.env.N ?? 200_000);
  await storeEvents(db, n);
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
