import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ADMIN_TOKEN,
  describeOnPostgres,
  fillAuditLog,
  startTestApp,
  type TestApp,
  tamper,
} from "../../server/test/harness";
import { run, USAGE } from "../src/cli";

const BIN = fileURLToPath(new URL("../bin/trellis.js", import.meta.url));

const SCHEMA = {
  type: "object",
  properties: { email: { type: "string", format: "email" }, age: { type: "integer", minimum: 0 } },
  required: ["email"],
};

let t: TestApp;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  t = await startTestApp("pglite");
  env = { TRELLIS_URL: await t.listen(), TRELLIS_ADMIN_TOKEN: ADMIN_TOKEN };
});

afterAll(() => t?.close());

/** Runs the CLI in-process and captures what it writes. */
async function cli(argv: string[], extraEnv: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const capture = (into: string[]) => (chunk: string | Uint8Array) => {
    into.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    return true;
  };
  const stdout = vi
    .spyOn(process.stdout, "write")
    .mockImplementation(capture(out) as typeof process.stdout.write);
  const stderr = vi
    .spyOn(process.stderr, "write")
    .mockImplementation(capture(err) as typeof process.stderr.write);
  try {
    const code = await run(argv, { ...env, ...extraEnv });
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

describe("trellis CLI against a real server", () => {
  let appId: string;
  let token: string;
  let submissionId: string;

  it("lists the templates", async () => {
    const r = await cli(["templates"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+VERSION\s+RETENTION\s+SCOPES\s+TITLE$/);
    const line = (id: string) => lines.find((l) => l.startsWith(`${id} `));
    expect(line("approval-queue")).toMatch(
      /^approval-queue\s+1\s+1095d\s+\S*review\S*\s+Approval queue$/,
    );
    expect(line("bookings")).toMatch(/^bookings\s+1\s+730d\s+\S*cancel\S*\s+Bookings$/);
    expect(line("directory")).toMatch(/^directory\s+1\s+1095d\s+\S*update\S*\s+Directory$/);
    expect(line("event-log")).toMatch(/^event-log\s+1\s+365d\s+\S*append\S*\s+Event log$/);
    expect(line("ttl-cache")).toMatch(/^ttl-cache\s+1\s+30d\s+\S*put\S*\s+TTL cache$/);
    expect(line("form-intake")).toMatch(/^form-intake\s+1\s+730d\s+\S*read:all\S*\s+Form intake$/);
  });

  it("templates show prints a template in plain words", async () => {
    const r = await cli(["templates", "show", "form-intake"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Who can see and change what, by default:");
    expect(r.stdout).toContain("- App-wide read: Keys with the read:all scope");
    expect((await cli(["templates", "show", "nope-nope"])).code).toBe(1);
  });

  it("apps create reads the schema from a file and prints the app", async () => {
    const file = join(t.dataDir, "schema.json");
    await writeFile(file, JSON.stringify(SCHEMA));
    const r = await cli([
      "apps",
      "create",
      "--name",
      "Signups",
      "--template",
      "form-intake",
      "--owner",
      "a@example.org",
      "--owner",
      "b@example.org",
      "--schema",
      file,
      "--retention-days",
      "14",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\{\n {2}"id": "app_/); // pretty-printed
    const app = JSON.parse(r.stdout);
    expect(app).toMatchObject({
      name: "Signups",
      template: "form-intake",
      owners: ["a@example.org", "b@example.org"],
      retention_days: 14,
      status: "active",
    });
    expect(app.payload_schema.properties.email).toEqual({ type: "string", format: "email" });
    appId = app.id;
  });

  it("apps create takes the schema inline too, and apps get prints the app", async () => {
    const inline = await cli([
      "apps",
      "create",
      "--name",
      "Inline",
      "--template",
      "form-intake",
      "--owner",
      "c@example.org",
      "--schema",
      JSON.stringify(SCHEMA),
    ]);
    expect(inline.code).toBe(0);
    expect(JSON.parse(inline.stdout).retention_days).toBe(730);

    const r = await cli(["apps", "get", appId]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: appId, name: "Signups" });
  });

  it("tokens create prints the issued token", async () => {
    const r = await cli([
      "tokens",
      "create",
      appId,
      "--subject",
      "kiosk",
      "--scope",
      "create",
      "--scope",
      "read",
      "--ttl",
      "900",
    ]);
    expect(r.code).toBe(0);
    const issued = JSON.parse(r.stdout);
    expect(issued).toMatchObject({ subject: "kiosk", scopes: ["create", "read"] });
    expect(issued.token_id).toMatch(/^tok_/);
    // The server's clock (a test clock, fixed since start), not the wall clock: a slow machine
    // spends seconds before this test, and the token still lives exactly its 900 s.
    expect(Date.parse(issued.expires_at) - t.clock.now().getTime()).toBeGreaterThan(899_000);
    expect(Date.parse(issued.expires_at) - t.clock.now().getTime()).toBeLessThanOrEqual(900_000);
    token = issued.token;
  });

  it("submit with --token prints the stored submission", async () => {
    const r = await cli([
      "submit",
      appId,
      "--token",
      token,
      "--payload",
      '{"email":"x@example.org","age":41}',
      "--form",
      "signup",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      app_id: appId,
      form_id: "signup",
      submitter_id: "kiosk",
      payload: { email: "x@example.org", age: 41 },
    });
    submissionId = s.id;
  });

  it("submit takes the token from TRELLIS_APP_TOKEN", async () => {
    const r = await cli(["submit", appId, "--payload", '{"email":"y@example.org"}'], {
      TRELLIS_APP_TOKEN: token,
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      form_id: "default",
      payload: { email: "y@example.org" },
    });
  });

  it("submissions lists a page and follows --cursor", async () => {
    const first = await cli(["submissions", appId, "--token", token, "--limit", "1"]);
    expect(first.code).toBe(0);
    const page = JSON.parse(first.stdout);
    expect(page.items).toHaveLength(1);
    expect(page.items[0].payload).toEqual({ email: "y@example.org" }); // newest first
    expect(page.next_cursor).toEqual(expect.any(String));

    const second = await cli([
      "submissions",
      appId,
      "--token",
      token,
      "--limit",
      "1",
      "--cursor",
      page.next_cursor,
    ]);
    const next = JSON.parse(second.stdout);
    expect(next.items.map((s: { id: string }) => s.id)).toEqual([submissionId]);
    expect(next.next_cursor).toBeNull();
  });

  it("a server refusal exits 1 with code, message, request id and issues on stderr", async () => {
    const r = await cli([
      "submit",
      appId,
      "--token",
      token,
      "--payload",
      '{"email":"nope","age":-1}',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const [head, ...issues] = r.stderr.trimEnd().split("\n");
    expect(head).toMatch(
      /^trellis: payload_invalid: The payload does not match the app's schema\. \(request req_[0-9a-z]{26}\)$/,
    );
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ {2}\/payload\/email: /),
        expect.stringMatching(/^ {2}\/payload\/age: /),
      ]),
    );
  });

  it("a token without the scope, and a bad admin token, exit 1 with their codes", async () => {
    const reader = JSON.parse(
      (await cli(["tokens", "create", appId, "--subject", "viewer", "--scope", "read"])).stdout,
    );
    const denied = await cli([
      "submit",
      appId,
      "--token",
      reader.token,
      "--payload",
      '{"email":"v@example.org"}',
    ]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^trellis: scope_missing: /);

    const bad = await cli(["apps", "get", appId], { TRELLIS_ADMIN_TOKEN: "y".repeat(40) });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^trellis: admin_token_invalid: The admin token is not valid\. \(request req_/,
    );
  });

  it("audit prints an aligned table with the actions, filtered by app", async () => {
    const r = await cli(["audit", "--app", appId, "--limit", "200"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    const header = lines[0] ?? "";
    expect(header).toMatch(/^TIME\s+OUTCOME\s+ACTION\s+ACTOR\s+RESOURCE\s+ERROR_CODE$/);
    const actionCol = header.indexOf("ACTION");
    const actions = lines.slice(1).map((l) => l.slice(actionCol).split(" ")[0]);
    expect(new Set(actions)).toEqual(
      new Set(["app.create", "app.get", "token.create", "submission.create", "submission.list"]),
    );
    // Aligned: every row has its OUTCOME value where the header has it.
    const outcomeCol = header.indexOf("OUTCOME");
    for (const line of lines.slice(1))
      expect(line.slice(outcomeCol)).toMatch(/^(allowed|denied|error) /);
    expect(r.stdout).toMatch(/denied\s+submission\.create\s+kiosk\s+submission\s+payload_invalid/);
    expect(r.stdout).toMatch(
      /denied\s+app\.get\s+\(anonymous\)\s+app\/app_[0-9a-z]{26}\s+admin_token_invalid/,
    );
  });

  it("audit strips terminal control characters from caller-chosen values in the table", async () => {
    const evil = "mallory\u001b[2J\u202e";
    const issued = JSON.parse(
      (await cli(["tokens", "create", appId, "--subject", evil, "--scope", "create"])).stdout,
    );
    expect(issued.subject).toBe(evil);
    const submitted = await cli([
      "submit",
      appId,
      "--token",
      issued.token,
      "--payload",
      '{"email":"m@example.org"}',
    ]);
    expect(JSON.parse(submitted.stdout).submitter_id).toBe(evil);
    const r = await cli(["audit", "--actor", evil]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^TIME/);
    expect(r.stdout).not.toContain("\u001b");
    expect(r.stdout).not.toContain("\u202e");
    expect(r.stdout).toMatch(
      /allowed\s+submission\.create\s+mallory\uFFFD\[2J\uFFFD\s+submission\//,
    );
    const json = await cli(["audit", "--actor", evil, "--json"]);
    expect(json.stdout).toContain('"actor_id": "mallory\\u001b[2J\\u202e"');
    expect(JSON.parse(json.stdout).items[0].actor_id).toBe(evil);
  });

  it("audit --outcome denied --json prints the page as JSON", async () => {
    const r = await cli(["audit", "--app", appId, "--outcome", "denied", "--json"]);
    expect(r.code).toBe(0);
    const page = JSON.parse(r.stdout);
    expect(page.items.map((e: { error_code: string }) => e.error_code).sort()).toEqual([
      "admin_token_invalid",
      "payload_invalid",
      "scope_missing",
    ]);
    expect(page.next_cursor).toBeNull();
  });

  it("audit erase needs --yes, then removes the subject's actor id from every event", async () => {
    const issued = JSON.parse(
      (await cli(["tokens", "create", appId, "--subject", "erin", "--scope", "create"])).stdout,
    );
    const sent = await cli([
      "submit",
      appId,
      "--token",
      issued.token,
      "--payload",
      '{"email":"erin@example.org"}',
    ]);
    expect(sent.code).toBe(0);
    const unsure = await cli(["audit", "erase", "erin"]);
    expect(unsure.code).toBe(2);
    expect(unsure.stderr).toMatch(/add --yes to go ahead/);
    expect(
      JSON.parse((await cli(["audit", "--actor", "erin", "--json"])).stdout).items,
    ).toHaveLength(1);
    const r = await cli(["audit", "erase", "erin", "--yes"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Erased 1 event\(s\) and revoked 1 token\(s\) \(subject tag [A-Za-z0-9_-]{43}, erasure event evt_/,
    );
    expect(JSON.parse((await cli(["audit", "--actor", "erin", "--json"])).stdout).items).toEqual(
      [],
    );
  });

  it("usage errors exit 2 with the usage text", async () => {
    const unknown = await cli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toBe(`trellis: unknown command "frobnicate"\n\n${USAGE}`);

    const missing = await cli([
      "apps",
      "create",
      "--name",
      "X",
      "--template",
      "form-intake",
      "--owner",
      "a@x",
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.startsWith("trellis apps: --schema is required\n\nUsage: trellis")).toBe(
      true,
    );

    const flag = await cli(["audit", "--bogus"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^trellis audit: Unknown option '--bogus'/);

    const outcome = await cli(["audit", "--outcome", "maybe"]);
    expect([outcome.code, outcome.stderr.split("\n")[0]]).toEqual([
      2,
      "trellis audit: --outcome must be one of allowed, denied, error",
    ]);

    const noToken = await cli(["submissions", appId]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/--token T or TRELLIS_APP_TOKEN/);

    const noAdmin = await cli(["templates"], { TRELLIS_ADMIN_TOKEN: undefined });
    expect(noAdmin.code).toBe(2);
    expect(noAdmin.stderr).toMatch(/TRELLIS_ADMIN_TOKEN is not set/);

    const badJson = await cli(["submit", appId, "--token", token, "--payload", "{oops"]);
    expect([badJson.code, badJson.stderr]).toEqual([
      2,
      expect.stringMatching(/^trellis submit: --payload: not valid JSON/),
    ]);
  });

  it("help prints the usage on stdout with exit 0", async () => {
    const r = await cli(["tokens", "--help"]);
    expect(r).toEqual({ code: 0, stdout: USAGE, stderr: "" });
  });

  it("an unreachable server exits 1 with the cause", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const r = await cli(["templates"], { TRELLIS_URL: `http://127.0.0.1:${port}` });
    expect([r.code, r.stderr]).toEqual([
      1,
      `trellis: cannot reach http://127.0.0.1:${port}: ECONNREFUSED\n`,
    ]);
  });
});

describe("trellis CLI: token lifecycle and keys", () => {
  it("lists, revokes one, revokes all, and rotates the key", async () => {
    const created = await cli([
      "apps",
      "create",
      "--name",
      "Lifecycle",
      "--template",
      "form-intake",
      "--owner",
      "o@example.org",
      "--schema",
      '{"type":"object"}',
    ]);
    const appId = JSON.parse(created.stdout).id as string;
    const issue = async (subject: string) =>
      JSON.parse(
        (await cli(["tokens", "create", appId, "--subject", subject, "--scope", "read"])).stdout,
      ) as {
        token_id: string;
      };
    const one = await issue("one");
    const two = await issue("two");

    const listed = await cli(["tokens", "list", appId]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${one.token_id}\\s+active\\s+one\\s+read`));

    const revoked = await cli(["tokens", "revoke", appId, one.token_id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked ${one.token_id}\n`);
    const afterOne = JSON.parse((await cli(["tokens", "list", appId, "--json"])).stdout) as {
      items: { token_id: string; status: string }[];
    };
    expect(afterOne.items.find((i) => i.token_id === one.token_id)?.status).toBe("revoked");
    expect(afterOne.items.find((i) => i.token_id === two.token_id)?.status).toBe("active");

    expect((await cli(["tokens", "revoke-all", appId])).code).toBe(0);
    const afterAll = JSON.parse((await cli(["tokens", "list", appId, "--json"])).stdout) as {
      items: { status: string }[];
    };
    expect(afterAll.items.map((i) => i.status)).toEqual(["revoked", "revoked"]);

    const rotated = await cli(["keys", "rotate"]);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout).kid).toMatch(/^key_/);

    const missing = await cli(["tokens", "revoke", appId]);
    expect(missing.code).toBe(2);
    const unknown = await cli(["keys", "spin"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown keys command "spin"');
  });
});

describe("trellis CLI: policies, labels, renewal and the pause button", () => {
  let appId: string;

  beforeAll(async () => {
    const created = await cli([
      "apps",
      "create",
      "--name",
      "Teams",
      "--template",
      "form-intake",
      "--owner",
      "o@example.org",
      "--schema",
      '{"type":"object","properties":{"title":{"type":"string"}}}',
      "--environment",
      "staging",
      "--block",
      "app-read",
      "--block",
      "owner-write",
      "--block",
      "label-scoped",
    ]);
    expect(created.stderr).toBe("");
    const app = JSON.parse(created.stdout);
    expect(app).toMatchObject({
      environment: "staging",
      policy_blocks: ["app-read", "owner-write", "label-scoped"],
    });
    appId = app.id;
  });

  it("policy blocks prints each block in plain words with its Cedar text", async () => {
    const r = await cli(["policy", "blocks"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("label-scoped  (forbid)  Label-scoped access");
    expect(r.stdout).toContain("    forbid (principal, action, resource is Trellis::Record)");
  });

  it("tokens create takes labels and an environment; explain tells why", async () => {
    const r = await cli([
      "tokens",
      "create",
      appId,
      "--subject",
      "hana",
      "--scope",
      "read:all",
      "--scope",
      "create",
      "--label",
      "team=hr",
    ]);
    expect(r.code).toBe(0);
    const issued = JSON.parse(r.stdout);
    expect(issued).toMatchObject({ labels: { team: "hr" }, environment: "staging" });
    const why = await cli([
      "policy",
      "explain",
      appId,
      "--token",
      issued.token,
      "--action",
      "read",
      "--owner",
      "ivan",
      "--resource-label",
      "team=it",
    ]);
    expect(why.code).toBe(0);
    expect(JSON.parse(why.stdout)).toMatchObject({
      decision: "deny",
      determining_policies: [{ id: "label-scoped" }],
    });
    const bad = await cli([
      "tokens",
      "create",
      appId,
      "--subject",
      "x",
      "--scope",
      "read",
      "--label",
      "nope",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--label nope: use key=value");
  });

  it("policy test runs a YAML suite: exit 0 when all pass, 1 when one fails", async () => {
    const good = join(t.dataDir, "good.yaml");
    await writeFile(
      good,
      `principals:
  hr: { sub: hana, scopes: ["read:all"], labels: { team: hr } }
resources:
  hr-row: { owner: ivan, labels: { team: hr } }
  it-row: { owner: ivan, labels: { team: it } }
tests:
  - { name: hr reads hr, principal: hr, action: read, resource: hr-row, expect: allow }
  - { name: hr not it, principal: hr, action: read, resource: it-row, expect: deny }
`,
    );
    const ok = await cli(["policy", "test", appId, good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("2 passed, 0 failed");
    const bad = join(t.dataDir, "bad.yaml");
    await writeFile(
      bad,
      `principals: { hr: { sub: hana, scopes: ["read:all"], labels: { team: hr } } }
resources: { it-row: { owner: ivan, labels: { team: it } } }
tests: [{ name: wrong, principal: hr, action: read, resource: it-row, expect: allow }]
`,
    );
    const failed = await cli(["policy", "test", appId, bad]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain("FAIL  wrong  (expected allow, got deny; label-scoped)");
    const missing = await cli(["policy", "test", appId, join(t.dataDir, "none.yaml")]);
    expect(missing.code).toBe(2);
  });

  it("policy add: an invalid policy exits 1 with policy_invalid; a forbid is active", async () => {
    const file = join(t.dataDir, "p.cedar");
    await writeFile(file, "forbid (principal, action, resource) when { resource.nope };");
    const bad = await cli(["policy", "add", appId, "--id", "custom.bad", "--file", file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("policy_invalid");
    await writeFile(file, 'forbid (principal, action == Trellis::Action::"delete", resource);');
    const ok = await cli(["policy", "add", appId, "--id", "custom.no-delete", "--file", file]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).policy).toMatchObject({ status: "active", effect: "forbid" });
    const shown = JSON.parse((await cli(["policy", "show", appId])).stdout);
    expect(Object.keys(shown.cedar)).toContain("custom.no-delete");
  });

  it("tokens renew, apps pause and resume", async () => {
    const issued = JSON.parse(
      (
        await cli([
          "tokens",
          "create",
          appId,
          "--subject",
          "r",
          "--scope",
          "create",
          "--label",
          "team=hr",
        ])
      ).stdout,
    );
    const renewed = await cli(["tokens", "renew", appId, issued.token_id]);
    expect(renewed.code).toBe(0);
    expect(JSON.parse(renewed.stdout)).toMatchObject({ renewed_from: issued.token_id });
    const more = await cli(["tokens", "renew", appId, issued.token_id, "--scope", "read:all"]);
    expect(more.code).toBe(0);
    expect(JSON.parse(more.stdout).approval_request_id).toMatch(/^apr_/);
    expect(more.stderr).toContain("waits for a steward");
    const approvals = JSON.parse((await cli(["apps", "approvals", appId])).stdout);
    expect(approvals.items.length).toBeGreaterThanOrEqual(1);
    const paused = await cli(["apps", "pause", appId]);
    expect(JSON.parse(paused.stdout).status).toBe("paused");
    const refused = await cli(["tokens", "create", appId, "--subject", "x", "--scope", "create"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("app_paused");
    const resumed = await cli(["apps", "resume", appId]);
    expect(JSON.parse(resumed.stdout).status).toBe("active");
  });
});

describe("trellis template check", () => {
  it("passes form-intake (exit 0) and names a broken template's problem (exit 1)", async () => {
    const { cpSync, writeFileSync: write } = await import("node:fs");
    const here = new URL("../../../templates/form-intake", import.meta.url).pathname;
    const ok = await cli(["template", "check", here]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(": ok");
    const dir = join(mkdtempSync(join(tmpdir(), "trellis-cli-tpl-")), "form-intake");
    cpSync(here, dir, { recursive: true });
    write(
      join(dir, "migrations", "0099_bad.sql"),
      "ALTER TABLE trellis.form_intake_submissions ADD COLUMN note text;",
    );
    const bad = await cli(["template", "check", dir]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("column note is unbounded text");
    expect(bad.stderr).toContain("1 problem");
    expect((await cli(["template", "lint", dir])).code).toBe(2);
  }, 30_000);
});

describe("trellis CLI: event-log, directory and ttl-cache apps", () => {
  const appWith = async (template: string, scopes: string[]) => {
    const created = await cli([
      "apps",
      "create",
      "--name",
      template,
      "--template",
      template,
      "--owner",
      "o@example.org",
      "--schema",
      '{"type":"object","properties":{"name":{"type":"string"},"n":{"type":"integer"}}}',
    ]);
    const id = JSON.parse(created.stdout).id as string;
    const args = ["tokens", "create", id, "--subject", "ana"];
    for (const s of scopes) args.push("--scope", s);
    const token = JSON.parse((await cli(args)).stdout).token as string;
    return { id, env: { TRELLIS_APP_TOKEN: token } };
  };

  it("events append and list", async () => {
    const { id, env: e } = await appWith("event-log", ["append", "read"]);
    const appended = await cli(
      ["events", "append", id, "--type", "door.opened", "--data", '{"n":1}'],
      e,
    );
    expect(appended.code).toBe(0);
    expect(JSON.parse(appended.stdout).seq).toBe(1);
    const listed = await cli(["events", "list", id, "--after", "0"], e);
    expect(JSON.parse(listed.stdout).items.map((x: { type: string }) => x.type)).toEqual([
      "door.opened",
    ]);
  });

  it("items create, list by attribute, update, delete", async () => {
    const { id, env: e } = await appWith("directory", ["create", "read", "update", "delete"]);
    const made = JSON.parse(
      (await cli(["items", "create", id, "--kind", "room", "--attrs", '{"name":"Blue","n":4}'], e))
        .stdout,
    );
    const listed = await cli(["items", "list", id, "--kind", "room", "--attr", "n=4"], e);
    expect(JSON.parse(listed.stdout).items.map((i: { id: string }) => i.id)).toEqual([made.id]);
    const updated = await cli(["items", "update", id, made.id, "--attrs", '{"n":null}'], e);
    expect(JSON.parse(updated.stdout).attrs).toEqual({ name: "Blue" });
    expect((await cli(["items", "delete", id, made.id], e)).stdout).toBe(`deleted ${made.id}\n`);
    expect((await cli(["items", "get", id, made.id], e)).code).toBe(1);
  });

  it("entries put and get; a missing --ttl is a usage error", async () => {
    const { id, env: e } = await appWith("ttl-cache", ["put", "read"]);
    expect(
      (await cli(["entries", "put", id, "s:1", "--value", '{"name":"ana"}', "--ttl", "60"], e))
        .code,
    ).toBe(0);
    expect(JSON.parse((await cli(["entries", "get", id, "s:1"], e)).stdout).value).toEqual({
      name: "ana",
    });
    expect((await cli(["entries", "put", id, "s:2", "--value", "{}"], e)).code).toBe(2);
  });

  it("bookings create, list by time, a conflict (exit 1, its code), cancel", async () => {
    const { id, env: e } = await appWith("bookings", ["create", "read", "cancel"]);
    const slot = ["--resource", "Room 1", "--start", "2030-03-02T10:00:00Z"];
    const made = await cli(["bookings", "create", id, ...slot, "--end", "2030-03-02T11:00:00Z"], e);
    expect(made.code).toBe(0);
    const booking = JSON.parse(made.stdout);
    expect(booking).toMatchObject({ resource: "Room 1", owner_id: "ana" });
    const clash = await cli(
      ["bookings", "create", id, ...slot, "--end", "2030-03-02T10:30:00Z"],
      e,
    );
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain("booking_conflict");
    const listed = await cli(
      ["bookings", "list", id, "--from", "2030-03-02T10:59:00Z", "--to", "2030-03-02T12:00:00Z"],
      e,
    );
    expect(JSON.parse(listed.stdout).items.map((b: { id: string }) => b.id)).toEqual([booking.id]);
    expect((await cli(["bookings", "cancel", id, booking.id], e)).stdout).toBe(
      `cancelled ${booking.id}\n`,
    );
    expect((await cli(["bookings", "get", id, booking.id], e)).code).toBe(1);
    expect((await cli(["bookings", "create", id, ...slot], e)).code).toBe(2); // no --end
  });

  it("audit export prints CSV filtered by app; a bad format is a usage error", async () => {
    const { id } = await appWith("directory", ["create"]);
    const out = await cli(["audit", "export", "--format", "csv", "--app", id]);
    expect(out.code).toBe(0);
    const rows = out.stdout.trimEnd().split("\n");
    expect(rows[0]?.startsWith("seq,event_id,timestamp,")).toBe(true);
    expect(rows.slice(1).map((r) => r.split(",")[5])).toEqual(["app.create", "token.create"]);
    expect((await cli(["audit", "export", "--format", "xlsx"])).code).toBe(2);
  });

  it("apps export to a file and import: the same app, hash checked; templates export", async () => {
    const { id, env: e } = await appWith("directory", ["create"]);
    await cli(["items", "create", id, "--kind", "room", "--attrs", '{"name":"Blue"}'], e);
    const dir = mkdtempSync(join(tmpdir(), "trellis-export-"));
    const file = join(dir, "app.ndjson");
    const out = await cli(["apps", "export", id, "--out", file]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^wrote .*app\.ndjson \(sha256 [0-9a-f]{64}\)\n$/);
    expect((await cli(["apps", "export", id, "--out", file])).code).not.toBe(0); // no overwrite
    const again = await cli(["apps", "import", file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("app_exists");
    const up = await cli(["apps", "upgrade", id]);
    expect(up.code).toBe(1);
    expect(up.stderr).toContain("upgrade_not_available"); // already on the current version
    expect((await cli(["apps", "upgrade", id, "--to", "x"])).code).toBe(2);
    const t = await cli(["templates", "export", "directory"]);
    expect(JSON.parse(t.stdout).ddl[0].name).toBe("0001_items.sql");
    rmSync(dir, { recursive: true, force: true });
  });

  it("admins and custom templates: submit, a steward approves, drafts lists them", async () => {
    const made = async (name: string, role: string) =>
      JSON.parse((await cli(["admins", "create", "--name", name, "--role", role])).stdout)
        .token as string;
    const ana = { TRELLIS_ADMIN_TOKEN: await made("Ana", "admin") };
    const sam = { TRELLIS_ADMIN_TOKEN: await made("Sam", "steward") };
    expect((await cli(["admins", "create", "--name", "X", "--role", "root"])).code).toBe(2);
    const def = JSON.stringify({
      id: "cli-assets",
      base: "directory",
      title: "Assets",
      description: "Things handed out to people, and who holds each.",
    });
    const sub = await cli(["templates", "submit", def], ana);
    expect(JSON.parse(sub.stdout)).toMatchObject({ id: "cli-assets", version: 1, status: "draft" });
    const self = await cli(["templates", "approve", "cli-assets", "1"], ana);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("role_missing");
    const ok = await cli(["templates", "approve", "cli-assets", "1", "--note", "fine"], sam);
    expect(JSON.parse(ok.stdout).status).toBe("approved");
    expect((await cli(["templates", "drafts"], sam)).stdout).toMatch(
      /cli-assets\s+1\s+directory\s+approved/,
    );
    const list = await cli(["admins", "list"]);
    expect(list.stdout).toMatch(/Sam\s+steward\s+active/);
  });

  it("requests create, list, move; an illegal move prints the allowed ones", async () => {
    const { id, env: e } = await appWith("approval-queue", ["create", "read", "withdraw"]);
    const made = JSON.parse(
      (
        await cli(
          ["requests", "create", id, "--payload", '{"name":"Laptop"}', "--reviewer", "rita"],
          e,
        )
      ).stdout,
    );
    expect(made.state).toBe("requested");
    const listed = await cli(["requests", "list", id, "--role", "requester"], e);
    expect(JSON.parse(listed.stdout).items.map((r: { id: string }) => r.id)).toEqual([made.id]);
    const wrong = await cli(["requests", "move", id, made.id, "approved"], e);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("transition_not_allowed");
    expect(wrong.stderr).toContain("allowed: withdrawn");
    const withdrawn = await cli(["requests", "move", id, made.id, "withdrawn"], e);
    expect(JSON.parse(withdrawn.stdout).state).toBe("withdrawn");
    expect((await cli(["requests", "move", id, made.id, "done"], e)).code).toBe(2);
  });
});

describe("trellis audit verify (reads the embedded datastore; no server needed)", () => {
  it("exit 0 on an intact log; exit 1 naming the event after one is changed in SQL", async () => {
    const { buildApp } = await import("../../server/src/app");
    const { parseConfig } = await import("../../server/src/config/config");
    const { openPglite } = await import("../../server/src/db/pglite");
    const dir = mkdtempSync(join(tmpdir(), "trellis-verify-"));
    const vars = {
      TRELLIS_DATA_DIR: dir,
      TRELLIS_ADMIN_TOKEN: ADMIN_TOKEN,
      TRELLIS_LOG_LEVEL: "silent",
    };
    // A server on that folder writes some events, integrates them, and stops.
    let db = await openPglite(join(dir, "pgdata"));
    const app = await buildApp({ config: parseConfig(vars), db });
    for (let i = 0; i < 3; i++)
      await app.inject({
        method: "GET",
        url: "/admin/v1/templates",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
    await app.transparency.flush();
    await app.close();
    await db.close();
    const ok = await cli(["audit", "verify"], { ...vars, DATABASE_URL: undefined });
    expect(ok.stdout, ok.stderr).toMatch(
      /^ok: \d+ events and \d+ signed checkpoints verify \(tree size \d+; [1-9]\d* anchor files match\)/,
    );
    expect(ok.stderr).toMatch(/pass --key/);
    expect(ok.code).toBe(0);
    // The installed command (bin/trellis.js) runs `audit verify` in a child with a larger young
    // generation: the same answer and exit code come back through it.
    const { DATABASE_URL: _, ...parentEnv } = process.env;
    const viaBin = () =>
      spawnSync(process.execPath, [BIN, "audit", "verify"], {
        env: { ...parentEnv, ...vars },
        encoding: "utf8",
      });
    const binOk = viaBin();
    expect(binOk.stdout, binOk.stderr).toBe(ok.stdout);
    expect(binOk.status).toBe(0);
    db = await openPglite(join(dir, "pgdata"));
    const { rows } = await db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events ORDER BY seq LIMIT 1",
    );
    await db.exec(`ALTER TABLE trellis.audit_events DISABLE TRIGGER USER;
      UPDATE trellis.audit_events SET actor_id = 'mallory' WHERE seq = (SELECT min(seq) FROM trellis.audit_events);`);
    await db.close();
    const bad = await cli(["audit", "verify"], { ...vars, DATABASE_URL: undefined });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`FAILED (event_changed): event ${rows[0]?.event_id}`);
    const binBad = viaBin();
    expect(binBad.status).toBe(1);
    expect(binBad.stdout).toBe(bad.stdout);
    expect((await cli(["audit", "verify", "--key"], vars)).code).toBe(2);
    expect((await cli(["audit", "verify", "--file", join(dir, "x")], vars)).code).toBe(2); // no --key
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});

describeOnPostgres("trellis audit verify on PostgreSQL (worker threads on a large log)", () => {
  it("the installed command verifies 60 000 events with its workers, and names a changed one", async () => {
    const t = await startTestApp("postgres");
    try {
      await fillAuditLog(t, 60_000); // past the 50 000 leaves from which workers start
      const { DATABASE_URL: _, ...parentEnv } = process.env;
      const viaBin = () =>
        spawnSync(process.execPath, [BIN, "audit", "verify"], {
          env: {
            ...parentEnv,
            DATABASE_URL: t.url,
            TRELLIS_DATA_DIR: t.dataDir,
            TRELLIS_ADMIN_TOKEN: ADMIN_TOKEN,
            TRELLIS_LOG_LEVEL: "silent",
          },
          encoding: "utf8",
        });
      const ok = viaBin();
      expect(ok.stdout, ok.stderr).toMatch(
        /^ok: 60000 events and [1-9]\d* signed checkpoints verify/,
      );
      expect(ok.status).toBe(0);
      const { rows } = await t.db.query<{ event_id: string }>(
        `SELECT e.event_id FROM trellis.audit_events e
           JOIN trellis.audit_leaves l ON l.event_seq = e.seq WHERE l.leaf_index = 54321`,
      );
      await tamper(t.db, "audit_events", (q) =>
        q.query("UPDATE trellis.audit_events SET resource_id = 'x' WHERE event_id = $1", [
          rows[0]?.event_id,
        ]),
      );
      const bad = viaBin();
      expect(bad.status, bad.stderr).toBe(1);
      expect(bad.stdout).toContain(
        `FAILED (event_changed): event ${rows[0]?.event_id} (leaf 54321)`,
      );
    } finally {
      await t.close();
    }
  }, 120_000);
});
