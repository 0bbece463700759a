import { readFile, writeFile } from "node:fs/promises";
import { type ParseArgsConfig, parseArgs } from "node:util";
import {
  ADMIN_ROLES,
  AUDIT_ACTIONS,
  AUDIT_OUTCOMES,
  type AuditAction,
  type AuditOutcome,
  ENVIRONMENTS,
  type Environment,
  PAGE,
  REQUEST_STATES,
  type SubmitCustomTemplateRequest,
} from "@trellis/contracts";
import { type AuditEvent, createAdminClient, createAppClient } from "@trellis/sdk";
import { clean, HelpRequested, PolicyTestsFailed, printJson, table, UsageError } from "./output";

type Env = Record<string, string | undefined>;

/** The commands that talk to a running server through the SDK. */
export const CLIENT_COMMANDS = [
  "templates",
  "apps",
  "tokens",
  "keys",
  "submit",
  "submissions",
  "audit",
  "policy",
  "events",
  "items",
  "entries",
  "bookings",
  "requests",
  "admins",
] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

export const DEFAULT_URL = "http://127.0.0.1:8080";

const HELP = { help: { type: "boolean", short: "h" } } as const;
type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs in strict mode; its complaints and a wrong number of positionals become usage errors. */
function parse<const O extends Options>(args: string[], options: O, positionals: string[]) {
  let parsed: ReturnType<
    typeof parseArgs<{
      args: string[];
      options: O & typeof HELP;
      allowPositionals: true;
      strict: true;
    }>
  >;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, ...HELP },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if ((parsed.values as { help?: boolean }).help) throw new HelpRequested();
  if (parsed.positionals.length !== positionals.length) {
    const want = positionals.length === 0 ? "no arguments" : positionals.join(" ");
    throw new UsageError(`expected ${want}, got ${JSON.stringify(parsed.positionals)}`);
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

function required<T>(value: T | undefined, flag: string): T {
  if (value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) {
    throw new UsageError(`${flag} is required`);
  }
  return value;
}

function integer(
  value: string | undefined,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

function oneOf<T extends string>(
  value: string | undefined,
  flag: string,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`${flag} must be one of ${allowed.join(", ")}`);
  return value as T;
}

/** A JSON object given inline (starts with `{`) or as a file path. */
async function jsonObject(value: string, flag: string): Promise<Record<string, unknown>> {
  let text = value;
  if (!value.trimStart().startsWith("{")) {
    try {
      text = await readFile(value, "utf8");
    } catch (err) {
      throw new UsageError(
        `${flag}: cannot read ${value} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${flag}: must be a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function baseUrl(env: Env): string {
  const url = env.TRELLIS_URL || DEFAULT_URL;
  if (!/^https?:\/\/[^\s]+$/.test(url))
    throw new UsageError(`TRELLIS_URL must be an http:// or https:// URL`);
  return url;
}

function admin(env: Env) {
  const token = env.TRELLIS_ADMIN_TOKEN;
  if (!token)
    throw new UsageError(
      "TRELLIS_ADMIN_TOKEN is not set (the admin token printed at the first start)",
    );
  return createAdminClient({ baseUrl: baseUrl(env), token });
}

function appClient(env: Env, appId: string, flag: string | undefined) {
  const token = flag || env.TRELLIS_APP_TOKEN;
  if (!token) throw new UsageError("an app token is required: --token T or TRELLIS_APP_TOKEN");
  return createAppClient({ baseUrl: baseUrl(env), appId, token });
}

async function templates(args: string[], env: Env): Promise<void> {
  if (args[0] === "submit") {
    const { positionals } = parse(args.slice(1), {}, ["FILE_OR_JSON"]);
    const definition = await jsonObject(positionals[0] ?? "", "FILE_OR_JSON");
    return printJson(
      await admin(env).customTemplates.submit(definition as unknown as SubmitCustomTemplateRequest),
    );
  }
  if (args[0] === "drafts") {
    parse(args.slice(1), {}, []);
    const { items } = await admin(env).customTemplates.list();
    if (items.length === 0) {
      process.stdout.write("No custom templates yet.\n");
      return;
    }
    const rows = items.map((v) => [
      v.id,
      String(v.version),
      v.base,
      v.status,
      v.submitted_by,
      v.decided_by ?? "",
    ]);
    process.stdout.write(
      table(["ID", "VERSION", "BASE", "STATUS", "SUBMITTED BY", "DECIDED BY"], rows),
    );
    return;
  }
  if (args[0] === "approve" || args[0] === "reject") {
    const { values, positionals } = parse(args.slice(1), { note: { type: "string" } }, [
      "ID",
      "VERSION",
    ]);
    const version = integer(positionals[1], "VERSION", 1, 10_000) ?? 1;
    const client = admin(env).customTemplates;
    return printJson(await client[args[0]](positionals[0] ?? "", version, values.note));
  }
  if (args[0] === "export") {
    const { positionals } = parse(args.slice(1), {}, ["ID"]);
    return printJson(await admin(env).templates.export(positionals[0] ?? ""));
  }
  if (args[0] === "show") {
    const { values, positionals } = parse(args.slice(1), { json: { type: "boolean" } }, ["ID"]);
    const detail = await admin(env).templates.get(positionals[0] ?? "");
    if (values.json) return printJson(detail);
    process.stdout.write(`${detail.plain_summary.map(clean).join("\n")}\n`);
    return;
  }
  const { values } = parse(args, { json: { type: "boolean" } }, []);
  const catalog = await admin(env).templates.list();
  if (values.json) return printJson(catalog);
  const rows = catalog.items.map((t) => [
    t.id,
    String(t.version),
    `${t.retention_days_default}d`,
    t.scopes.map((s) => s.name).join(","),
    t.title,
  ]);
  process.stdout.write(table(["ID", "VERSION", "RETENTION", "SCOPES", "TITLE"], rows));
}

async function apps(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "create") {
    const { values } = parse(
      rest,
      {
        name: { type: "string" },
        template: { type: "string" },
        owner: { type: "string", multiple: true },
        schema: { type: "string" },
        "retention-days": { type: "string" },
        environment: { type: "string" },
        block: { type: "string", multiple: true },
      },
      [],
    );
    const request = {
      name: required(values.name, "--name"),
      template: required(values.template, "--template"),
      owners: required(values.owner, "--owner"),
      payload_schema: await jsonObject(required(values.schema, "--schema"), "--schema"),
      retention_days: integer(values["retention-days"], "--retention-days", 1, 3650),
      environment: oneOf<Environment>(values.environment, "--environment", ENVIRONMENTS),
      policy_blocks: values.block,
    };
    return printJson(await admin(env).apps.create(request));
  }
  if (sub === "get" || sub === "pause" || sub === "resume" || sub === "approvals") {
    const { positionals } = parse(rest, {}, ["APP_ID"]);
    const id = positionals[0] ?? "";
    const client = admin(env).apps;
    if (sub === "approvals") return printJson(await client.approvalRequests(id));
    return printJson(await client[sub](id));
  }
  if (sub === "export") {
    const { values, positionals } = parse(rest, { out: { type: "string" } }, ["APP_ID"]);
    const ndjson = await admin(env).apps.export(positionals[0] ?? "");
    if (!values.out) {
      process.stdout.write(ndjson);
      return;
    }
    await writeFile(values.out, ndjson, { flag: "wx" }); // never overwrite an earlier export
    const end = JSON.parse(ndjson.trimEnd().split("\n").at(-1) ?? "{}") as { sha256?: string };
    process.stdout.write(`wrote ${clean(values.out)} (sha256 ${clean(end.sha256 ?? "?")})\n`);
    return;
  }
  if (sub === "upgrade") {
    const { values, positionals } = parse(
      rest,
      { to: { type: "string" }, confirm: { type: "string" } },
      ["APP_ID"],
    );
    const report = await admin(env).apps.upgrade(positionals[0] ?? "", {
      to_version: integer(values.to, "--to", 2, 10_000),
      dry_run: values.confirm === undefined,
      confirm: values.confirm,
    });
    printJson(report);
    if (report.dry_run)
      process.stderr.write(
        `Dry run: nothing changed. To upgrade: trellis apps upgrade ${clean(report.app_id)} --confirm ${clean(report.plan)}\n`,
      );
    return;
  }
  if (sub === "import") {
    const { positionals } = parse(rest, {}, ["FILE"]);
    const ndjson = await readFile(positionals[0] ?? "", "utf8").catch(() => {
      throw new UsageError(`cannot read ${positionals[0]}`);
    });
    return printJson(await admin(env).apps.import(ndjson));
  }
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  throw new UsageError(
    sub
      ? `unknown apps command "${sub}"`
      : "apps needs a command: create, get, pause, resume, approvals, export, import or upgrade",
  );
}

async function tokens(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "list") {
    const { values, positionals } = parse(rest, { json: { type: "boolean" } }, ["APP_ID"]);
    const page = await admin(env).tokens.list(positionals[0] ?? "");
    if (values.json) return printJson(page);
    process.stdout.write(
      table(
        ["TOKEN_ID", "STATUS", "SUBJECT", "SCOPES", "EXPIRES_AT"],
        page.items.map((i) => [i.token_id, i.status, i.subject, i.scopes.join(" "), i.expires_at]),
      ),
    );
    return;
  }
  if (sub === "revoke") {
    const { positionals } = parse(rest, {}, ["APP_ID", "TOKEN_ID"]);
    await admin(env).tokens.revoke(positionals[0] ?? "", positionals[1] ?? "");
    process.stdout.write(`revoked ${positionals[1]}\n`);
    return;
  }
  if (sub === "renew") {
    const { values, positionals } = parse(
      rest,
      { scope: { type: "string", multiple: true }, ttl: { type: "string" } },
      ["APP_ID", "TOKEN_ID"],
    );
    const result = await admin(env).tokens.renew(positionals[0] ?? "", positionals[1] ?? "", {
      scopes: values.scope,
      ttl_seconds: integer(values.ttl, "--ttl", 1, 86_400 * 7),
    });
    printJson(result);
    if ("approval_request_id" in result)
      process.stderr.write("Not issued: this renewal waits for a steward's approval.\n");
    return;
  }
  if (sub === "revoke-all") {
    const { positionals } = parse(rest, {}, ["APP_ID"]);
    await admin(env).tokens.revokeAll(positionals[0] ?? "");
    process.stdout.write(`revoked every token of ${positionals[0]} issued up to now\n`);
    return;
  }
  if (sub !== "create")
    throw new UsageError(
      sub
        ? `unknown tokens command "${sub}"`
        : "tokens needs a command: create, list, renew, revoke or revoke-all",
    );
  const { values, positionals } = parse(
    rest,
    {
      subject: { type: "string" },
      scope: { type: "string", multiple: true },
      ttl: { type: "string" },
      label: { type: "string", multiple: true },
      environment: { type: "string" },
    },
    ["APP_ID"],
  );
  const issued = await admin(env).tokens.create(positionals[0] ?? "", {
    subject: required(values.subject, "--subject"),
    scopes: required(values.scope, "--scope"),
    ttl_seconds: integer(values.ttl, "--ttl", 1, 86_400 * 365),
    labels: labels(values.label),
    environment: oneOf<Environment>(values.environment, "--environment", ENVIRONMENTS),
  });
  printJson(issued);
}

async function keys(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub !== "rotate")
    throw new UsageError(sub ? `unknown keys command "${sub}"` : "keys needs a command: rotate");
  parse(rest, {}, []);
  printJson(await admin(env).keys.rotate());
}

async function submit(args: string[], env: Env): Promise<void> {
  const { values, positionals } = parse(
    args,
    { token: { type: "string" }, payload: { type: "string" }, form: { type: "string" } },
    ["APP_ID"],
  );
  const payload = await jsonObject(required(values.payload, "--payload"), "--payload");
  const client = appClient(env, positionals[0] ?? "", values.token);
  printJson(await client.submissions.create({ form_id: values.form, payload }));
}

async function submissions(args: string[], env: Env): Promise<void> {
  const { values, positionals } = parse(
    args,
    {
      token: { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      form: { type: "string" },
    },
    ["APP_ID"],
  );
  const limit = integer(values.limit, "--limit", 1, PAGE.maxLimit);
  const client = appClient(env, positionals[0] ?? "", values.token);
  printJson(await client.submissions.list({ limit, cursor: values.cursor, form_id: values.form }));
}

/** event-log: `events append APP --type T --data JSON` | `events list APP [--after N]`. */
async function events(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "append") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, type: { type: "string" }, data: { type: "string" } },
      ["APP_ID"],
    );
    const data = await jsonObject(required(values.data, "--data"), "--data");
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.events.append({ type: required(values.type, "--type"), data }));
  }
  if (sub === "list") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, after: { type: "string" }, limit: { type: "string" } },
      ["APP_ID"],
    );
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(
      await client.events.list({
        after: integer(values.after, "--after", 0, Number.MAX_SAFE_INTEGER),
        limit: integer(values.limit, "--limit", 1, PAGE.maxLimit),
      }),
    );
  }
  throw new UsageError(
    sub ? `unknown events command "${sub}"` : "events needs a command: append or list",
  );
}

/** directory: `items create|list|get|update|delete`. */
async function items(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "create") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, kind: { type: "string" }, attrs: { type: "string" } },
      ["APP_ID"],
    );
    const attrs = await jsonObject(required(values.attrs, "--attrs"), "--attrs");
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.items.create({ kind: required(values.kind, "--kind"), attrs }));
  }
  if (sub === "list") {
    const { values, positionals } = parse(
      rest,
      {
        token: { type: "string" },
        kind: { type: "string" },
        attr: { type: "string", multiple: true },
        limit: { type: "string" },
        cursor: { type: "string" },
      },
      ["APP_ID"],
    );
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(
      await client.items.list({
        kind: values.kind,
        attrs: labels(values.attr),
        limit: integer(values.limit, "--limit", 1, PAGE.maxLimit),
        cursor: values.cursor,
      }),
    );
  }
  if (sub === "get" || sub === "delete") {
    const { values, positionals } = parse(rest, { token: { type: "string" } }, [
      "APP_ID",
      "ITEM_ID",
    ]);
    const client = appClient(env, positionals[0] ?? "", values.token);
    if (sub === "get") return printJson(await client.items.get(positionals[1] ?? ""));
    await client.items.delete(positionals[1] ?? "");
    process.stdout.write(`deleted ${clean(positionals[1] ?? "")}\n`);
    return;
  }
  if (sub === "update") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, attrs: { type: "string" } },
      ["APP_ID", "ITEM_ID"],
    );
    const attrs = await jsonObject(required(values.attrs, "--attrs"), "--attrs");
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.items.update(positionals[1] ?? "", attrs));
  }
  throw new UsageError(
    sub
      ? `unknown items command "${sub}"`
      : "items needs a command: create, list, get, update or delete",
  );
}

/** ttl-cache: `entries put APP KEY --value JSON --ttl SECONDS` | `entries get APP KEY`. */
async function entries(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "put") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, value: { type: "string" }, ttl: { type: "string" } },
      ["APP_ID", "KEY"],
    );
    const value = await jsonObject(required(values.value, "--value"), "--value");
    const ttl = integer(required(values.ttl, "--ttl"), "--ttl", 1, 2_592_000) ?? 0;
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.entries.put(positionals[1] ?? "", value, ttl));
  }
  if (sub === "get") {
    const { values, positionals } = parse(rest, { token: { type: "string" } }, ["APP_ID", "KEY"]);
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.entries.get(positionals[1] ?? ""));
  }
  throw new UsageError(
    sub ? `unknown entries command "${sub}"` : "entries needs a command: put or get",
  );
}

/** approval-queue: `requests create|list|get|move`. */
async function requests(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "create") {
    const { values, positionals } = parse(
      rest,
      { token: { type: "string" }, payload: { type: "string" }, reviewer: { type: "string" } },
      ["APP_ID"],
    );
    const payload = await jsonObject(required(values.payload, "--payload"), "--payload");
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(
      await client.requests.create({
        payload,
        assigned_reviewer: required(values.reviewer, "--reviewer"),
      }),
    );
  }
  if (sub === "list") {
    const { values, positionals } = parse(
      rest,
      {
        token: { type: "string" },
        role: { type: "string" },
        state: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
      },
      ["APP_ID"],
    );
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(
      await client.requests.list({
        role: oneOf(values.role, "--role", ["requester", "reviewer"] as const),
        state: oneOf(values.state, "--state", REQUEST_STATES),
        limit: integer(values.limit, "--limit", 1, PAGE.maxLimit),
        cursor: values.cursor,
      }),
    );
  }
  if (sub === "get") {
    const { values, positionals } = parse(rest, { token: { type: "string" } }, [
      "APP_ID",
      "REQUEST_ID",
    ]);
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.requests.get(positionals[1] ?? ""));
  }
  if (sub === "move") {
    const { values, positionals } = parse(rest, { token: { type: "string" } }, [
      "APP_ID",
      "REQUEST_ID",
      "STATE",
    ]);
    const to = oneOf(positionals[2], "STATE", REQUEST_STATES);
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.requests.transition(positionals[1] ?? "", to ?? "requested"));
  }
  throw new UsageError(
    sub
      ? `unknown requests command "${sub}"`
      : "requests needs a command: create, list, get or move",
  );
}

/**
 * bookings: `bookings create APP --resource R --start TIME --end TIME` | `bookings list APP
 * [--resource R] [--from TIME] [--to TIME]` | `bookings get|cancel APP BOOKING_ID`.
 */
async function bookings(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "create") {
    const { values, positionals } = parse(
      rest,
      {
        token: { type: "string" },
        resource: { type: "string" },
        start: { type: "string" },
        end: { type: "string" },
      },
      ["APP_ID"],
    );
    const req = {
      resource: required(values.resource, "--resource"),
      starts_at: required(values.start, "--start"),
      ends_at: required(values.end, "--end"),
    };
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(await client.bookings.create(req));
  }
  if (sub === "list") {
    const { values, positionals } = parse(
      rest,
      {
        token: { type: "string" },
        resource: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
      },
      ["APP_ID"],
    );
    const client = appClient(env, positionals[0] ?? "", values.token);
    return printJson(
      await client.bookings.list({
        resource: values.resource,
        from: values.from,
        to: values.to,
        limit: integer(values.limit, "--limit", 1, PAGE.maxLimit),
        cursor: values.cursor,
      }),
    );
  }
  if (sub === "get" || sub === "cancel") {
    const { values, positionals } = parse(rest, { token: { type: "string" } }, [
      "APP_ID",
      "BOOKING_ID",
    ]);
    const client = appClient(env, positionals[0] ?? "", values.token);
    if (sub === "get") return printJson(await client.bookings.get(positionals[1] ?? ""));
    await client.bookings.cancel(positionals[1] ?? "");
    process.stdout.write(`cancelled ${clean(positionals[1] ?? "")}\n`);
    return;
  }
  throw new UsageError(
    sub
      ? `unknown bookings command "${sub}"`
      : "bookings needs a command: create, list, get or cancel",
  );
}

/** People on the control plane: `admins create --name N --role admin|steward… | list | revoke ID`. */
async function admins(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  if (sub === "create") {
    const { values } = parse(
      rest,
      { name: { type: "string" }, role: { type: "string", multiple: true } },
      [],
    );
    const roles = required(values.role, "--role").map(
      (r) => oneOf(r, "--role", ADMIN_ROLES) ?? ADMIN_ROLES[0],
    );
    return printJson(
      await admin(env).admins.create({ name: required(values.name, "--name"), roles }),
    );
  }
  if (sub === "list") {
    parse(rest, {}, []);
    const { items } = await admin(env).admins.list();
    const rows = items.map((a) => [
      a.id,
      a.name ?? "",
      a.roles.join(","),
      a.revoked_at ? "revoked" : "active",
    ]);
    process.stdout.write(table(["ID", "NAME", "ROLES", "STATUS"], rows));
    return;
  }
  if (sub === "revoke") {
    const { positionals } = parse(rest, {}, ["ADMIN_ID"]);
    await admin(env).admins.revoke(positionals[0] ?? "");
    process.stdout.write(`revoked ${clean(positionals[0] ?? "")}\n`);
    return;
  }
  throw new UsageError(
    sub ? `unknown admins command "${sub}"` : "admins needs a command: create, list or revoke",
  );
}

/** `--label team=hr --label region=eu` → {team: "hr", region: "eu"}. */
function labels(values: string[] | undefined): Record<string, string> | undefined {
  if (!values) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i <= 0) throw new UsageError(`--label ${v}: use key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

async function readText(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

async function policy(args: string[], env: Env): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help") throw new HelpRequested();
  const client = admin(env).policy;
  if (sub === "blocks") {
    const { values } = parse(rest, { json: { type: "boolean" } }, []);
    const list = await client.blocks();
    if (values.json) return printJson(list);
    for (const b of list.items) {
      process.stdout.write(clean(`${b.id}  (${b.effect})  ${b.title}`));
      process.stdout.write(`\n  ${clean(b.summary)}\n`);
      for (const text of Object.values(b.cedar))
        for (const line of text.split("\n")) process.stdout.write(`    ${clean(line)}\n`);
      process.stdout.write("\n");
    }
    return;
  }
  if (sub === "show") {
    const { positionals } = parse(rest, {}, ["APP_ID"]);
    return printJson(await client.get(positionals[0] ?? ""));
  }
  if (sub === "set") {
    const { values, positionals } = parse(rest, { block: { type: "string", multiple: true } }, [
      "APP_ID",
    ]);
    return printJson(
      await client.setBlocks(positionals[0] ?? "", required(values.block, "--block")),
    );
  }
  if (sub === "add") {
    const { values, positionals } = parse(
      rest,
      { id: { type: "string" }, file: { type: "string" } },
      ["APP_ID"],
    );
    const cedar = await readText(required(values.file, "--file"), "--file");
    const r = await client.addCustom(positionals[0] ?? "", {
      id: required(values.id, "--id"),
      cedar,
    });
    printJson(r);
    if (r.approval_request_id)
      process.stderr.write("A permit widens access: it waits for a steward's approval.\n");
    return;
  }
  if (sub === "remove") {
    const { positionals } = parse(rest, {}, ["APP_ID", "POLICY_ID"]);
    await client.removeCustom(positionals[0] ?? "", positionals[1] ?? "");
    process.stdout.write(`removed ${positionals[1]}\n`);
    return;
  }
  if (sub === "explain") {
    const { values, positionals } = parse(
      rest,
      {
        token: { type: "string" },
        subject: { type: "string" },
        scope: { type: "string", multiple: true },
        label: { type: "string", multiple: true },
        environment: { type: "string" },
        action: { type: "string" },
        record: { type: "string" },
        owner: { type: "string" },
        "resource-label": { type: "string", multiple: true },
        reviewer: { type: "string" },
      },
      ["APP_ID"],
    );
    if (!values.token && !values.subject)
      throw new UsageError("explain needs --token T or --subject S (with --scope, --label…)");
    return printJson(
      await client.explain(positionals[0] ?? "", {
        action: required(values.action, "--action"),
        ...(values.token
          ? { token: values.token }
          : {
              principal: {
                sub: values.subject ?? "",
                scopes: values.scope ?? [],
                labels: labels(values.label) ?? {},
                environment: oneOf<Environment>(values.environment, "--environment", ENVIRONMENTS),
              },
            }),
        ...(values.record ? { record_id: values.record } : {}),
        ...(values.owner
          ? {
              resource: {
                owner: values.owner,
                labels: labels(values["resource-label"]) ?? {},
                reviewer: values.reviewer ?? null,
              },
            }
          : {}),
      }),
    );
  }
  if (sub === "test") {
    const { values, positionals } = parse(rest, { json: { type: "boolean" } }, ["APP_ID", "FILE"]);
    const yaml = await readText(positionals[1] ?? "", "FILE");
    const r = await client.test(positionals[0] ?? "", yaml);
    if (values.json) printJson(r);
    else {
      for (const x of r.results)
        process.stdout.write(
          `${clean(`${x.ok ? "ok  " : "FAIL"}  ${x.name}  (expected ${x.expected}, got ${x.actual}${x.policy_ids.length ? `; ${x.policy_ids.join(", ")}` : ""})`)}\n`,
        );
      process.stdout.write(`\n${r.passed} passed, ${r.failed} failed\n`);
    }
    if (r.failed > 0) throw new PolicyTestsFailed(r.failed);
    return;
  }
  throw new UsageError(
    sub
      ? `unknown policy command "${sub}"`
      : "policy needs a command: blocks, show, set, add, remove, explain or test",
  );
}

const AUDIT_HEADERS = ["TIME", "OUTCOME", "ACTION", "ACTOR", "RESOURCE", "ERROR_CODE"];

const auditRow = (e: AuditEvent): string[] => [
  e.timestamp,
  e.outcome,
  e.action,
  e.actor_id ?? `(${e.actor_role})`,
  e.resource_id ? `${e.resource_type}/${e.resource_id}` : e.resource_type,
  e.error_code ?? "-",
];

/** The audit filters of `audit` and `audit export`, from their flags. */
function auditFilter(values: Partial<Record<keyof typeof AUDIT_FILTERS, string>>) {
  return {
    app: values.app,
    actor: values.actor,
    action: oneOf<AuditAction>(values.action, "--action", AUDIT_ACTIONS),
    outcome: oneOf<AuditOutcome>(values.outcome, "--outcome", AUDIT_OUTCOMES),
    resource_type: values["resource-type"],
    resource_id: values.resource,
    from: values.from,
    to: values.to,
  };
}

const AUDIT_FILTERS = {
  app: { type: "string" },
  actor: { type: "string" },
  action: { type: "string" },
  outcome: { type: "string" },
  "resource-type": { type: "string" },
  resource: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
} as const;

async function audit(args: string[], env: Env): Promise<void> {
  if (args[0] === "erase") {
    const { values, positionals } = parse(args.slice(1), { yes: { type: "boolean" } }, ["SUBJECT"]);
    if (!values.yes)
      throw new UsageError(
        "audit erase removes a person's actor id and personal data from the audit log for good; add --yes to go ahead",
      );
    const r = await admin(env).audit.erase(positionals[0] ?? "");
    process.stdout.write(
      `Erased ${r.erased} event(s) and revoked ${r.tokens} token(s) (subject tag ${r.subject_tag}, erasure event ${r.event_id}).\n` +
        (r.pending > 0
          ? `${r.pending} event(s) from the last second are not in the log yet: run it again in a moment.\n`
          : "") +
        (r.kept > 0
          ? `${r.kept} event(s) logged before erasure existed keep the actor (their leaves hash it).\n`
          : ""),
    );
    return;
  }
  if (args[0] === "export") {
    const { values } = parse(args.slice(1), { ...AUDIT_FILTERS, format: { type: "string" } }, []);
    process.stdout.write(
      await admin(env).audit.export({
        ...auditFilter(values),
        format: oneOf(values.format, "--format", ["ndjson", "csv"] as const),
      }),
    );
    return;
  }
  const { values } = parse(
    args,
    {
      ...AUDIT_FILTERS,
      limit: { type: "string" },
      cursor: { type: "string" },
      json: { type: "boolean" },
    },
    [],
  );
  const page = await admin(env).audit.list({
    ...auditFilter(values),
    limit: integer(values.limit, "--limit", 1, PAGE.maxLimit),
    cursor: values.cursor,
  });
  if (values.json) return printJson(page);
  if (page.items.length === 0) {
    process.stdout.write("No audit events match.\n");
    return;
  }
  process.stdout.write(table(AUDIT_HEADERS, page.items.map(auditRow)));
  if (page.next_cursor) process.stdout.write(`\nMore: add --cursor ${page.next_cursor}\n`);
}

/**
 * Runs one client command; resolves when its output is written. Throws `UsageError`,
 * `HelpRequested`, `TrellisApiError`, or a network error for the caller to turn into an exit code.
 * @example await runClientCommand("apps", ["get", "app_01…"], { TRELLIS_ADMIN_TOKEN: "…" })
 */
export function runClientCommand(command: ClientCommand, args: string[], env: Env): Promise<void> {
  const commands: Record<ClientCommand, (args: string[], env: Env) => Promise<void>> = {
    templates,
    apps,
    tokens,
    keys,
    submit,
    submissions,
    audit,
    policy,
    events,
    items,
    entries,
    bookings,
    requests,
    admins,
  };
  return commands[command](args, env);
}
