import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, describeConfig, parseConfig } from "./config";

describe("parseConfig", () => {
  it("has safe defaults: local bind on 8080, embedded store, one-hour tokens", () => {
    const c = parseConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      databaseUrl: undefined,
      adminToken: undefined,
      tokenDefaultTtl: 3600,
      tokenMaxTtl: 28_800,
      bodyLimit: 65_536,
    });
    expect(c.dataDir.endsWith("/.trellis")).toBe(true);
  });

  it("reads every variable", () => {
    const key = Buffer.alloc(32, 1).toString("base64");
    const c = parseConfig({
      TRELLIS_PORT: "9090",
      TRELLIS_HOST: "0.0.0.0",
      DATABASE_URL: "postgres://u@h/db",
      TRELLIS_ADMIN_TOKEN: "x".repeat(32),
      TRELLIS_MASTER_KEY: key,
      TRELLIS_TOKEN_DEFAULT_TTL: "600",
      TRELLIS_TOKEN_MAX_TTL_DEV: "1200",
      TRELLIS_TOKEN_MAX_TTL_STAGING: "900",
      TRELLIS_TOKEN_MAX_TTL_PROD: "600",
    });
    expect(c).toMatchObject({
      port: 9090,
      host: "0.0.0.0",
      databaseUrl: "postgres://u@h/db",
      adminToken: "x".repeat(32),
      tokenDefaultTtl: 600,
      tokenMaxTtl: 1200,
      tokenMaxTtlByEnv: { dev: 1200, staging: 900, prod: 600 },
    });
    expect(c.masterKey?.equals(Buffer.alloc(32, 1))).toBe(true);
  });

  it("stops on unknown TRELLIS_ names and invalid values, listing them all, never echoing secrets", () => {
    let err: unknown;
    try {
      parseConfig({
        TRELLIS_PROT: "1",
        TRELLIS_PORT: "99999",
        DATABASE_URL: "mysql://x",
        TRELLIS_ADMIN_TOKEN: "short-secret",
        TRELLIS_MASTER_KEY: "c2hvcnQ=",
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join("\n");
    expect((err as ConfigError).problems).toHaveLength(5);
    expect(problems).toContain("TRELLIS_PROT is not a Trellis setting");
    expect(problems).toContain('TRELLIS_PORT="99999"');
    expect(problems).toContain("DATABASE_URL");
    expect(problems).toContain("TRELLIS_ADMIN_TOKEN=(hidden): must be at least 32 characters");
    expect(problems).not.toContain("short-secret");
    expect(problems).toContain("TRELLIS_MASTER_KEY=(hidden)");
  });

  it("refuses a prod maximum longer than the dev one (prod tokens live shorter)", () => {
    expect(() =>
      parseConfig({ TRELLIS_TOKEN_MAX_TTL_PROD: "7200", TRELLIS_TOKEN_MAX_TTL_DEV: "3600" }),
    ).toThrow(/TRELLIS_TOKEN_MAX_TTL_PROD must not exceed TRELLIS_TOKEN_MAX_TTL_DEV/);
  });

  it("defaults: dev 8 h, staging 4 h, prod 1 h", () => {
    expect(parseConfig({}).tokenMaxTtlByEnv).toEqual({ dev: 28800, staging: 14400, prod: 3600 });
  });

  it("accepts the CLI's own variables, so one shell can run the server and the CLI", () => {
    expect(parseConfig({ TRELLIS_URL: "http://127.0.0.1:8080", TRELLIS_APP_TOKEN: "x" }).port).toBe(
      8080,
    );
  });

  it("ignores variables outside its namespace and treats empty as unset", () => {
    expect(parseConfig({ PATH: "/bin", TRELLIS_PORT: "" }).port).toBe(8080);
  });

  it("describes every variable, hiding secret values", () => {
    const rows = describeConfig({ TRELLIS_ADMIN_TOKEN: "x".repeat(40), TRELLIS_PORT: "1234" });
    expect(rows.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        "TRELLIS_PORT",
        "TRELLIS_HOST",
        "TRELLIS_DATA_DIR",
        "DATABASE_URL",
        "TRELLIS_ADMIN_TOKEN",
      ]),
    );
    expect(rows.find((r) => r.name === "TRELLIS_ADMIN_TOKEN")?.current).toBe("(set, hidden)");
    expect(rows.find((r) => r.name === "TRELLIS_PORT")?.current).toBe("1234");
    for (const r of rows) expect(r.describe.length).toBeGreaterThan(10);
  });

  it("refuses malformed witness keys by name, and a witness URL without its key", () => {
    expect(() => parseConfig({ TRELLIS_WITNESS_LOGS: "not-a-key" })).toThrow(
      /TRELLIS_WITNESS_LOGS/,
    );
    expect(() =>
      parseConfig({
        TRELLIS_AUDIT_WITNESS_URL: "https://w.example.org",
        TRELLIS_AUDIT_WITNESS_KEY: "x+y+z",
      }),
    ).toThrow(/TRELLIS_AUDIT_WITNESS_KEY/);
    expect(() => parseConfig({ TRELLIS_AUDIT_WITNESS_URL: "https://w.example.org" })).toThrow(
      /go together/,
    );
  });
});

describe("the README's configuration table", () => {
  it("lists every variable the server reads", () => {
    const readme = readFileSync(new URL("../../../../README.md", import.meta.url), "utf8");
    const table = readme.slice(readme.indexOf("## Configuration"));
    const missing = describeConfig({})
      .map((v) => v.name)
      .filter((name) => !table.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});
