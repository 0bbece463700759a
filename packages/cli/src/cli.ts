import {
  checkTemplateDir,
  describeConfig,
  startServer,
  verifyLogFile,
  verifyStoredLog,
} from "@trellis/server";
import { CLIENT_COMMANDS, type ClientCommand, DEFAULT_URL, runClientCommand } from "./commands";
import { clean, HelpRequested, PolicyTestsFailed, printError, UsageError } from "./output";

export const USAGE = `Usage: trellis <command> [options]

Server:
  start     Start the server (embedded database unless DATABASE_URL is set)
  config    Show every setting, its default and its current value
  template check DIR
            Check a template folder offline: its manifest against templates/manifest.schema.json,
            then its migrations on a scratch database (app_id, FORCE RLS, bounded text, …)

Control plane (TRELLIS_URL, default http://127.0.0.1:8080; TRELLIS_ADMIN_TOKEN):
  templates [--json]
            List the template catalog
  templates show ID [--json]
            What a template stores and who can see it, in plain words (or the whole manifest)
  templates export ID
            The template's manifest, JSON Schemas, DDL with checksums and policy blocks, as JSON
  templates submit FILE_OR_JSON | templates drafts
            Submit a custom template version (a draft) | every version with its status
  templates approve ID VERSION [--note TEXT] | templates reject ID VERSION [--note TEXT]
            Steward only, and not the person who submitted it: only approved versions reach the catalog
  admins create --name NAME --role admin|steward [--role …] | admins list | admins revoke ADMIN_ID
            A credential per person (the token is shown once) | who has one | revoke at once
  apps create --name NAME --template ID --owner EMAIL [--owner EMAIL…]
              --schema FILE_OR_JSON [--retention-days N]
            Create an app; prints the app as JSON
              [--environment dev|staging|prod] [--block BLOCK…]
            (blocks default to the template's; see \`trellis policy blocks\`)
  apps get APP_ID
            Show one app as JSON
  apps pause APP_ID | apps resume APP_ID
            The pause button: no data reachable, every token revoked; resume re-opens
  apps approvals APP_ID
            Requests waiting for a steward (renewals beyond policy, custom permits)
  apps export APP_ID [--out FILE] | apps import FILE
            An app's settings and data as NDJSON with its SHA-256 | recreate it here (hash checked)
  apps upgrade APP_ID [--to VERSION] [--confirm PLAN]
            To a newer template version: a dry run (what changes, how many rows), then with --confirm
  tokens create APP_ID --subject SUBJECT --scope SCOPE [--scope SCOPE…] [--ttl SECONDS]
                [--label KEY=VALUE…] [--environment dev|staging|prod]
            Issue an app token; prints {token, token_id, expires_at, …} (shown only once)
  tokens renew APP_ID TOKEN_ID [--scope SCOPE…] [--ttl SECONDS]
            A fresh token like the old one; beyond policy, an approval request instead
  tokens list APP_ID [--json]
            The app's tokens and their status (never the tokens themselves)
  tokens revoke APP_ID TOKEN_ID
            Revoke one token, on every server at once
  tokens revoke-all APP_ID
            Revoke every token of the app issued up to now (incident response)
  keys rotate
            A new signing key signs from now on; prints {kid, created_at}
  policy blocks [--json]
            The policy blocks to choose from, in plain words with their Cedar text
  policy show APP_ID | policy set APP_ID --block BLOCK [--block BLOCK…]
            An app's policies | choose its blocks
  policy add APP_ID --id custom.NAME --file POLICY.cedar | policy remove APP_ID POLICY_ID
            Add a custom Cedar policy (a forbid applies at once, a permit waits for a steward)
  policy explain APP_ID --action ACTION (--token T | --subject S [--scope …] [--label K=V…])
                 [--record RECORD_ID | --owner S [--resource-label K=V…] [--reviewer S]]
            Why it is allowed or denied, which policies decided, and the SQL row filter
  policy test APP_ID FILE.yaml [--json]
            Run a policy test suite against the app (exit 1 when a case fails)
  audit [--app APP_ID] [--actor ACTOR] [--action ACTION] [--outcome allowed|denied|error]
        [--resource-type T] [--resource ID] [--from TIME] [--to TIME]
        [--limit N] [--cursor C] [--json]
            Audit events, newest first, as a table (or the page as JSON); TIME: ISO 8601
            with an offset, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z

App API (an app token: --token T or TRELLIS_APP_TOKEN):
  submit APP_ID --payload JSON_OR_FILE [--form FORM_ID] [--token T]
            Submit an entry; prints it as JSON
  submissions APP_ID [--limit N] [--cursor C] [--form FORM_ID] [--token T]
            One page of entries, newest first, as JSON

  events append APP_ID --type TYPE --data JSON_OR_FILE | events list APP_ID [--after N] [--limit N]
            event-log apps: append an event (prints its number) | read events in order
  items create APP_ID --kind KIND --attrs JSON_OR_FILE | items list APP_ID [--kind K] [--attr NAME=VALUE…]
  items get|delete APP_ID ITEM_ID | items update APP_ID ITEM_ID --attrs JSON (null removes a key)
            directory apps
  entries put APP_ID KEY --value JSON_OR_FILE --ttl SECONDS | entries get APP_ID KEY
            ttl-cache apps
  bookings create APP_ID --resource R --start TIME --end TIME | bookings list APP_ID [--resource R]
           [--from TIME] [--to TIME] | bookings get|cancel APP_ID BOOKING_ID
            bookings apps (TIME: ISO 8601 with an offset; an overlap is booking_conflict)
  requests create APP_ID --payload JSON_OR_FILE --reviewer SUBJECT | requests list APP_ID [--role requester|reviewer] [--state S]
  requests get APP_ID REQUEST_ID | requests move APP_ID REQUEST_ID reviewing|approved|rejected|withdrawn
            approval-queue apps (an illegal move prints the allowed ones)

  audit export [--format ndjson|csv] [--app A] [--actor S] [--action A] [--outcome O]
               [--resource-type T] [--resource ID] [--from TIME] [--to TIME]
            Every matching audit event, oldest first, streamed to stdout
  audit erase SUBJECT --yes
            Erase a person's actor id and personal data from the audit log (GDPR) and
            revoke their tokens; proofs and audit verify keep passing
  audit verify [--key VERIFIER_KEY] [--file LOG_EXPORT]
            Check the whole audit log in the datastore (stop the server first when it is
            embedded): every event against its leaf, every checkpoint's signature and root;
            exit 0 only when all verify, else the first bad event is named. --file checks an
            export from GET /admin/v1/audit/log-export instead (with --key)
  help      Show this text (also: trellis <command> --help)

Exit codes: 0 done, 1 the server refused or could not be reached, 2 usage error.
`;

const isClientCommand = (command: string): command is ClientCommand =>
  (CLIENT_COMMANDS as readonly string[]).includes(command);

/** Runs one CLI command; returns the exit code. */
export async function run(
  argv: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const [command = "help", ...args] = argv;
  // Reads the datastore itself, not the server: an auditor's check needs no running server.
  if (command === "audit" && args[0] === "verify") return auditVerify(args.slice(1), env);
  if (isClientCommand(command)) return client(command, args, env);
  switch (command) {
    case "start":
      return start(env);
    case "config": {
      for (const row of describeConfig(env)) {
        process.stdout.write(
          `${row.name}\n  ${row.describe}\n  default: ${row.default}${row.current ? `\n  current: ${row.current}` : ""}\n\n`,
        );
      }
      return 0;
    }
    case "template":
      return template(args);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`trellis: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function client(
  command: ClientCommand,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  try {
    await runClientCommand(command, args, env);
    return 0;
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (err instanceof PolicyTestsFailed) return 1;
    if (err instanceof UsageError) {
      process.stderr.write(`trellis ${command}: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    printError(err, env.TRELLIS_URL || DEFAULT_URL);
    return 1;
  }
}

/** `trellis template check DIR`: 0 when the template is sound, 1 with every problem listed. */
async function template(args: string[]): Promise<number> {
  const [sub, dir, ...extra] = args;
  if (sub !== "check" || !dir || extra.length > 0) {
    process.stderr.write(`trellis template: use \`trellis template check DIR\`\n\n${USAGE}`);
    return 2;
  }
  const problems = await checkTemplateDir(dir);
  if (problems.length === 0) {
    process.stdout.write(`${clean(dir)}: ok\n`);
    return 0;
  }
  for (const p of problems)
    process.stderr.write(`${clean(p.file)} ${clean(p.path)}: ${clean(p.message)}\n`);
  process.stderr.write(`${problems.length} problem${problems.length === 1 ? "" : "s"}\n`);
  return 1;
}

/**
 * `trellis audit verify [--key VERIFIER_KEY] [--file EXPORT]`: exit 0 only when the whole log
 * verifies, from the datastore or from a log export (which needs the key: nothing in a file
 * vouches for itself).
 */
async function auditVerify(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const [name, value] = [args[i], args[i + 1]];
    if ((name !== "--key" && name !== "--file") || value === undefined || value.startsWith("--")) {
      process.stderr.write("usage: trellis audit verify [--key VERIFIER_KEY] [--file EXPORT]\n");
      return 2;
    }
    flags.set(name, value);
  }
  const key = flags.get("--key");
  const file = flags.get("--file");
  if (file && !key) {
    process.stderr.write(
      "trellis: --file needs --key (the log's verifier key, from a source you trust)\n",
    );
    return 2;
  }
  let shown = 0;
  try {
    const onProgress = (done: number, total: number) => {
      if (done === total || done - shown >= 50_000) {
        shown = done;
        process.stderr.write(`verified ${done}/${total} events\n`);
      }
    };
    const report =
      file && key
        ? await verifyLogFile(file, key, onProgress)
        : await verifyStoredLog(env, { verifierKey: key, onProgress });
    if (report.ok) {
      const anchors = report.anchors ? `; ${report.anchors} anchor files match` : "";
      process.stdout.write(
        `ok: ${report.events} events and ${report.checkpoints} signed checkpoints verify (tree size ${report.tree_size}${anchors})\n`,
      );
      if (!file && report.anchors === 0 && report.checkpoints > 0)
        process.stderr.write(
          "note: no anchor files were found (TRELLIS_AUDIT_ANCHOR_DIR): the checkpoints were checked against the database alone\n",
        );
      if (!key)
        process.stderr.write(
          "note: checked with the verifier key stored in the datastore itself; pass --key with the key you published (GET /audit/key) so a replaced key cannot pass\n",
        );
      return 0;
    }
    process.stdout.write(
      `FAILED (${report.problem?.kind}): ${clean(report.problem?.message ?? "")}\n`,
    );
    return 1;
  } catch (err) {
    process.stderr.write(`trellis: ${clean((err as Error).message)}\n`);
    return 1;
  }
}

async function start(env: Record<string, string | undefined>): Promise<number> {
  const running = await startServer(env);
  const store = running.config.databaseUrl
    ? "PostgreSQL"
    : `embedded PGlite in ${running.config.dataDir}`;
  process.stdout.write(`Trellis is serving on ${running.url} (${store}). Stop with Ctrl-C.\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`\n${signal}: closing…\n`);
      running.close().then(resolve, (err) => {
        process.stderr.write(`trellis: error while closing: ${String(err)}\n`);
        resolve();
      });
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  process.stdout.write("Closed cleanly.\n");
  return 0;
}
