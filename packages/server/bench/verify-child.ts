/**
 * The audit-log bench's timed `audit verify`: run in a child started with the Node flags the
 * CLI gives the command (VERIFY_NODE_FLAGS), so the bench measures what `trellis audit verify`
 * does (worker threads included). Argument: the database URL. Prints one JSON line {ok, events, seconds, problem}.
 */
import { openPostgres } from "../src/db/postgres";
import { verifyLog, verifyWorkers } from "../src/modules/transparency/verify-log";

const url = process.argv[2];
if (!url) throw new Error("usage: verify-child.ts DATABASE_URL");
const db = await openPostgres(url, 20);
const t0 = performance.now();
const report = await verifyLog(db, {
  workers: verifyWorkers(url), // as `trellis audit verify` does on PostgreSQL
  onProgress: (done, total) => {
    if (done % 200_000 === 0 || done === total) process.stderr.write(`${done}/${total}\n`);
  },
});
const seconds = (performance.now() - t0) / 1000;
await db.close();
process.stdout.write(
  `${JSON.stringify({ ok: report.ok, events: report.events, seconds, problem: report.problem?.message })}\n`,
);
