import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = join(ROOT, "packages/cli/src/main.ts");

const freePort = () =>
  new Promise<number>((res) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });

interface Proc {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  exited: Promise<number | null>;
}

function startCli(env: Record<string, string>): Proc {
  // With the SDK's source export condition, as `npm start` runs: never its built dist/.
  const child = spawn(
    process.execPath,
    ["--conditions=trellis-source", "--import", "tsx", CLI, "start"],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, out: () => out, exited };
}

async function until(p: Proc, text: string, ms = 60_000) {
  const start = Date.now();
  while (!p.out().includes(text)) {
    if (Date.now() - start > ms)
      throw new Error(`timed out waiting for "${text}"; output:\n${p.out()}`);
    if (p.child.exitCode !== null)
      throw new Error(`process exited (${p.child.exitCode}) before "${text}":\n${p.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("trellis start (real process, embedded database on disk)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "trellis-e2e-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("prints a generated admin token once, refuses a second process on the same folder, closes cleanly on SIGTERM, and keeps data across restarts", async () => {
    const port = await freePort();
    const env = {
      TRELLIS_DATA_DIR: dataDir,
      TRELLIS_PORT: String(port),
      TRELLIS_LOG_LEVEL: "warn",
    };
    const base = `http://127.0.0.1:${port}`;

    const first = startCli(env);
    await until(first, "Trellis is serving");
    const token = /trl_admin_[A-Za-z0-9_-]{43}/.exec(first.out())?.[0];
    expect(token).toBeDefined();
    const admin = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const created = await fetch(`${base}/admin/v1/apps`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({
        name: "Persisted",
        template: "form-intake",
        owners: ["a@example.com"],
        payload_schema: { type: "object" },
      }),
    });
    expect(created.status).toBe(201);
    const app = (await created.json()) as { id: string };

    const second = startCli({ ...env, TRELLIS_PORT: String(await freePort()) });
    expect(await second.exited).toBe(1);
    expect(second.out()).toContain("is in use by another Trellis process");

    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.out()).toContain("Closed cleanly.");

    const third = startCli(env);
    await until(third, "Trellis is serving");
    expect(third.out()).not.toContain("trl_admin_");
    const got = await fetch(`${base}/admin/v1/apps/${app.id}`, { headers: admin });
    expect(got.status).toBe(200);
    expect(((await got.json()) as { name: string }).name).toBe("Persisted");
    third.child.kill("SIGINT");
    expect(await third.exited).toBe(0);
  }, 120_000);

  it("stops with a clear message and exit code 1 on invalid configuration", async () => {
    const p = startCli({
      TRELLIS_DATA_DIR: dataDir,
      TRELLIS_PORT: "not-a-port",
      TRELLIS_COLOUR: "blue",
    });
    expect(await p.exited).toBe(1);
    expect(p.out()).toContain("Invalid configuration");
    expect(p.out()).toContain("TRELLIS_COLOUR is not a Trellis setting");
    expect(p.out()).toContain('TRELLIS_PORT="not-a-port"');
  });
});
