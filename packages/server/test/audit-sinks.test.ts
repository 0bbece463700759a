import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leafHash } from "@trellis/sdk";
import canonicalize from "canonicalize";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/config";
import { auditSinks } from "../src/modules/transparency/sinks";
import { createApp, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const SECRET = "webhook-secret-0123456789abcdefghijklmnop";

describe.each(DATASTORES)("audit sinks on %s", (kind) => {
  let t: TestApp;
  let server: Server;
  const received: Array<{ leaf_index: number; leaf_hash: string; event: Record<string, unknown> }> =
    [];
  let failNext = 0;
  let badSignatures = 0;
  let sinkFile: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const ts = String(req.headers["x-trellis-timestamp"]);
        const want = `sha256=${createHmac("sha256", SECRET).update(`${ts}.${body}`).digest("hex")}`;
        const got = String(req.headers["x-trellis-signature"]);
        if (got.length !== want.length || !timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
          badSignatures += 1;
          res.writeHead(401).end();
          return;
        }
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(503).end();
          return;
        }
        received.push(...JSON.parse(body).events);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    t = await startTestApp(kind, {
      TRELLIS_AUDIT_WEBHOOK_URL: `http://127.0.0.1:${port}/audit`,
      TRELLIS_AUDIT_WEBHOOK_SECRET: SECRET,
      TRELLIS_AUDIT_SINK_FILE: join(mkdtempSync(join(tmpdir(), "trellis-sink-")), "audit.ndjson"),
      TRELLIS_AUDIT_MERGE_DELAY_MS: "60000", // the test drives the sinks itself
    });
    sinkFile = t.config.auditSinkFile as string;
    const app = await createApp(t);
    const token = await issueToken(t, app, "ana", ["create"]);
    for (let i = 0; i < 5; i++)
      await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/submissions`,
        token,
        body: { payload: { title: `t${i}` } },
      });
    await t.app.transparency.flush();
  });
  afterAll(async () => {
    await t?.close();
    server?.close();
  });

  const treeSize = async () =>
    Number(
      (await t.db.query<{ n: number }>("SELECT tree_size AS n FROM trellis.audit_log_state"))
        .rows[0]?.n,
    );

  it("the file gets every leaf in order, exactly as hashed, and resumes after its last line", async () => {
    await t.app.auditSinks.runOnce();
    const lines = () =>
      readFileSync(sinkFile, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
    const first = lines();
    expect(first.map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    for (const l of first) {
      const hash = leafHash(new TextEncoder().encode(canonicalize(l.event) as string));
      expect(Buffer.from(hash).toString("base64")).toBe(l.leaf_hash);
    }
    await t.call({ method: "GET", url: "/admin/v1/templates" });
    await t.app.transparency.flush();
    await t.app.auditSinks.runOnce();
    await t.app.auditSinks.runOnce(); // nothing new: nothing written twice
    const after = lines();
    expect(after.map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    // After a restart the sink reads its position from the file: one more event, one more line.
    await t.call({ method: "GET", url: "/admin/v1/templates" });
    await t.app.transparency.flush();
    await auditSinks({ db: t.db, clock: t.clock, file: sinkFile, intervalMs: 1000 }).runOnce();
    expect(lines().map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
  });

  it("the webhook is retried with backoff while it fails, never blocking requests, and gets every leaf once", async () => {
    await t.call({ method: "GET", url: "/admin/v1/templates" }); // a new event to deliver
    await t.app.transparency.flush();
    const before = received.length;
    failNext = 2;
    await t.app.auditSinks.runOnce(); // 503: backs off
    expect(received.length).toBe(before);
    expect(t.app.auditSinks.status().failures).toBe(1);
    // Requests go on meanwhile.
    const res = await t.call({ method: "GET", url: "/admin/v1/templates" });
    expect(res.status).toBe(200);
    await t.app.transparency.flush();
    await t.app.auditSinks.runOnce(); // still backing off: no attempt
    expect(failNext).toBe(1);
    t.clock.advance(2);
    await t.app.auditSinks.runOnce(); // 503 again
    t.clock.advance(5);
    await t.app.auditSinks.runOnce(); // delivered
    expect(t.app.auditSinks.status().failures).toBe(0);
    expect(received.map((r) => r.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    expect(badSignatures).toBe(0);
  });

  it("a webhook URL without its secret is a configuration error", () => {
    expect(() => parseConfig({ TRELLIS_AUDIT_WEBHOOK_URL: "https://example.org/hook" })).toThrow(
      /TRELLIS_AUDIT_WEBHOOK_SECRET/,
    );
    expect(() =>
      parseConfig({
        TRELLIS_AUDIT_WEBHOOK_URL: "ftp://example.org",
        TRELLIS_AUDIT_WEBHOOK_SECRET: SECRET,
      }),
    ).toThrow(/TRELLIS_AUDIT_WEBHOOK_URL/);
  });
});
