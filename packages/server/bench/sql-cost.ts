/**
 * PostgreSQL instructions per statement of the data path, counted by valgrind (callgrind) in the
 * backend that runs it: a deterministic measure where this shared machine's timings swing by
 * ±10 % from one minute to the next (docs/benchmarks.md). Not part of `npm run bench`.
 *
 *   npx tsx packages/server/bench/sql-cost.ts [N]      # N transactions per variant (default 600)
 *
 * Needs valgrind, PostgreSQL's server binaries (PG_BIN, default the newest
 * /usr/lib/postgresql/<version>/bin) and pgbench. It makes a throwaway cluster in a temp folder
 * (as root, its processes run as the `postgres` user), migrates it with the server's own code,
 * creates a form-intake app, then for each variant runs pgbench (one client, prepared) twice,
 * N/6 and N transactions, under one postmaster started with `valgrind --tool=callgrind
 * --trace-children=yes`, and prints (I(N) - I(N/6)) / (N - N/6): the instructions one more
 * transaction costs, with the backend's start-up cancelled out. Instructions are not time (a
 * parsing loop runs faster per instruction than a B-tree descent), so read a difference here as
 * "what to measure next", then confirm it in `npm run bench`.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import { openPostgres } from "../src/db/postgres";

const N = Number(process.argv[2] ?? 600);
if (!Number.isInteger(N) || N < 60) throw new Error("N must be an integer of at least 60");
const SMALL = Math.floor(N / 6);

function pgBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error("PostgreSQL's server binaries not found: set PG_BIN");
  return join(root, newest, "bin");
}
const BIN = pgBin();
const asRoot = process.getuid?.() === 0;
/** A command as a user allowed to run PostgreSQL's server programs (initdb refuses root). */
const asPgUser = (argv: string[]): [string, string[]] =>
  asRoot ? ["runuser", ["-u", "postgres", "--", ...argv]] : [argv[0] as string, argv.slice(1)];
const run = (prog: string, args: string[]) => {
  const [cmd, argv] = asPgUser([join(BIN, prog), ...args]);
  execFileSync(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
};

const dir = mkdtempSync(join(tmpdir(), "trellis-sql-cost-"));
if (asRoot) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), 0);
const data = join(dir, "data");
const port = 20_000 + Math.floor(Math.random() * 10_000);
const url = `postgres://postgres@127.0.0.1:${port}/trellis`;
const serverArgs = ["-D", data, "-p", String(port), "-k", dir, "-c", "autovacuum=off"];

function waitReady() {
  for (let i = 0; i < 120; i++) {
    try {
      execFileSync(join(BIN, "pg_isready"), ["-q", "-h", "127.0.0.1", "-p", String(port)]);
      return;
    } catch {
      execFileSync("sleep", ["1"]);
    }
  }
  throw new Error("the throwaway PostgreSQL did not start");
}
const stop = () => {
  try {
    run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
  } catch {}
};

/** Migrates the cluster with the server's code and creates one form-intake app; returns its id. */
async function prepare(): Promise<string> {
  run("initdb", ["-D", data, "-A", "trust", "-U", "postgres"]);
  run("pg_ctl", [
    "-D",
    data,
    "-o",
    serverArgs.slice(2).join(" "),
    "-l",
    join(dir, "log"),
    "-w",
    "start",
  ]);
  execFileSync("psql", [
    "-q",
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-U",
    "postgres",
    "-c",
    "CREATE DATABASE trellis",
    "postgres",
  ]);
  const db = await openPostgres(url, 2);
  const token = `sql-cost-${randomBytes(24).toString("hex")}`;
  const config = parseConfig({
    DATABASE_URL: url,
    TRELLIS_ADMIN_TOKEN: token,
    TRELLIS_MASTER_KEY: randomBytes(32).toString("base64"),
    TRELLIS_DATA_DIR: join(dir, "trellis"),
    TRELLIS_LOG_LEVEL: "warn",
    TRELLIS_AUDIT_MERGE_DELAY_MS: "60000",
  });
  const app = await buildApp({ config, db });
  const res = await app.inject({
    method: "POST",
    url: "/admin/v1/apps",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    payload: JSON.stringify({
      name: "SQL cost",
      template: "form-intake",
      owners: ["owner@example.com"],
      payload_schema: { type: "object" },
    }),
  });
  if (res.statusCode !== 201) throw new Error(`creating the app: ${res.statusCode} ${res.body}`);
  await app.close();
  await db.close();
  stop();
  return JSON.parse(res.body).id as string;
}

/** pgbench scripts: what each bench variant sends, with a fresh id per transaction. */
function scripts(appId: string): Record<string, { sql: string; per: number }> {
  const n = "\\set n random(1, 1000000000000)\n";
  // A time-ordered UUID (like the server's UUIDv7): microseconds, then the random number.
  const micros = `lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0')`;
  const uuid = `(${micros} || lpad(to_hex(:n::bigint), 16, '0'))::uuid`;
  const eventId = `'evt_' || ${micros} || :n`;
  const payload = `'{"title":"hello","priority":"low"}'::jsonb`;
  // The gateway's trellis.gw_ctx (gateway-ctx.ts), as the composite literal the server sends.
  const ctx = `('("${appId}","bench-user","create read","","dev","dev","owner-read owner-write app-read","owner-write.create","tok_01m8v8k032fdmrjqh71th9dwm3","' || ${eventId} || '","req_01m8v8k032fdmrjqh71th9dwm3","2026-12-02T11:00:00.000Z",)')::trellis.gw_ctx`;
  const events = JSON.stringify(
    Array.from({ length: 16 }, (_, i) => ({
      event_id: `EVT${i}`,
      occurred_at: "2026-12-02T11:00:00.000Z",
      actor_id: "bench-user",
      actor_role: "app_user",
      action: "submission.list",
      resource_type: "submission",
      resource_id: null,
      app_id: appId,
      token_id: "tok_01m8v8k032fdmrjqh71th9dwm3",
      policy_ids: ["owner-read.read"],
      outcome: "allowed",
      error_code: null,
      request_id: "req_01m8v8k032fdmrjqh71th9dwm3",
      diff: null,
    })),
  )
    // pgbench would take `:null` for a variable: a space after every key's colon.
    .replaceAll('":', '": ')
    .replace(/EVT(\d+)/g, (_, i) => `evt_' || :n || '_${i}`);
  return {
    // The bench's bare route: the owner's plain INSERT (no claims, RLS or audit row).
    bare: {
      sql: `${n}INSERT INTO trellis.form_intake_submissions (id, app_id, form_id, submitter_id, payload, created_at) VALUES (${uuid}, '${appId}', 'default', 'bench-user', ${payload}, now());\n`,
      per: 1,
    },
    // The bench's `audited` route: the bare INSERT and the audit row a governed create records,
    // in one statement as the owner (no claims, no RLS, no gateway function; the rules trigger fires).
    audited: {
      sql: `${n}WITH s AS (INSERT INTO trellis.form_intake_submissions (id, app_id, form_id, submitter_id, payload, created_at) VALUES (${uuid}, '${appId}', 'default', 'bench-user', ${payload}, now()) RETURNING id) INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action, resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id) SELECT ${eventId}, now(), 'bench-user', 'app_user', 'submission.create', 'submission', s.id::text, '${appId}', 'tok_01m8v8k032fdmrjqh71th9dwm3', ARRAY['owner-write.create'], 'allowed', 'req_01m8v8k032fdmrjqh71th9dwm3' FROM s;\n`,
      per: 1,
    },
    // The governed write's one statement: claims, RLS, the data row and its audit row.
    governed: {
      sql: `${n}SELECT trellis.gw_form_intake_create(${ctx}, ${uuid}, 'default', ${payload}, NULL);\n`,
      per: 1,
    },
    // The audit group commit of 16 reads: instructions per event.
    "audit_append (per event of 16)": {
      sql: `${n}SELECT trellis.audit_append(('${events}')::jsonb);\n`,
      per: 16,
    },
  };
}

/**
 * Instructions of the busiest callgrind file not in `before` (the backend pgbench talked to),
 * once the new files stop changing: a backend writes its file as it exits, after pgbench has.
 */
function backendInstructions(before: Set<string>): number {
  let last = "";
  for (let i = 0; i < 120; i++) {
    execFileSync("sleep", ["0.5"]);
    const files = readdirSync(dir).filter((f) => f.startsWith("cg.") && !before.has(f));
    const totals = files.map((f) => {
      const m = readFileSync(join(dir, f), "utf8").match(/^(?:summary|totals): (\d+)/m);
      return Number(m?.[1] ?? 0);
    });
    const now = totals.join(",");
    if (files.length > 0 && totals.every((n) => n > 0) && now === last) return Math.max(...totals);
    last = now;
  }
  throw new Error("no complete callgrind output from the backend");
}

async function main() {
  const appId = await prepare();
  const [cmd, argv] = asPgUser([
    "valgrind",
    "--tool=callgrind",
    "--trace-children=yes",
    `--callgrind-out-file=${join(dir, "cg.%p")}`,
    join(BIN, "postgres"),
    ...serverArgs,
  ]);
  const postmaster = spawn(cmd, argv, { stdio: "ignore" });
  const exited = new Promise((ok) => postmaster.once("exit", ok));
  try {
    waitReady();
    console.log(
      `PostgreSQL instructions per transaction (callgrind, ${BIN}), ${SMALL} and ${N} transactions:`,
    );
    for (const [name, s] of Object.entries(scripts(appId))) {
      const file = join(dir, "script.sql");
      writeFileSync(file, s.sql);
      const count = (t: number) => {
        const before = new Set(readdirSync(dir));
        const args = ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-n"];
        args.push("-M", "prepared", "-c", "1", "-t", String(t), "-f", file, "trellis");
        const out = spawnSync("pgbench", args, { encoding: "utf8" });
        if (out.status !== 0 || /error|abort/i.test(out.stderr))
          throw new Error(`pgbench failed on ${name}:\n${out.stderr}`);
        return backendInstructions(before);
      };
      const small = count(SMALL);
      const large = count(N);
      const per = (large - small) / (N - SMALL) / s.per;
      console.log(`  ${name.padEnd(32)} ${Math.round(per).toLocaleString("en-US").padStart(12)}`);
    }
  } finally {
    stop();
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
