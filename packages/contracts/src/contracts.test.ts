import { describe, expect, it } from "vitest";
import {
  AUDIT_ACTIONS,
  CreateAppRequest,
  ERRORS,
  FORM_INTAKE_SCOPES,
  idPattern,
  ListSubmissionsQuery,
  PAGE,
} from "./index";

describe("contracts", () => {
  it("every error code has a 4xx/5xx status and a caller-safe message", () => {
    for (const [code, { status, message }] of Object.entries(ERRORS)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      expect(message, code).toMatch(/^[A-Z].*\.$/);
    }
    expect(ERRORS.internal.status).toBe(500);
  });

  it("audit actions are resource.verb", () => {
    for (const a of AUDIT_ACTIONS) expect(a).toMatch(/^[a-z_]+\.[a-z_]+$/);
  });

  it("id patterns accept minted ids only", () => {
    expect(idPattern("app").test("app_01m8hrjjgteqwaq4egn1v0ye4r")).toBe(true);
    expect(idPattern("app").test("app_01m8hrjjgteqwaq4egn1v0ye4")).toBe(false);
    expect(idPattern("app").test("tok_01m8hrjjgteqwaq4egn1v0ye4r")).toBe(false);
    expect(idPattern("app").test("app_01m8hrjjgteqwaq4egn1v0ye4u")).toBe(false); // no 'u' in Crockford
  });

  it("list limits are bounded and default sensibly", () => {
    expect(ListSubmissionsQuery.parse({}).limit).toBe(PAGE.defaultLimit);
    expect(ListSubmissionsQuery.safeParse({ limit: String(PAGE.maxLimit + 1) }).success).toBe(
      false,
    );
  });

  it("app creation rejects unknown fields", () => {
    expect(
      CreateAppRequest.safeParse({
        name: "n",
        template: "t",
        owners: ["o"],
        payload_schema: {},
        status: "active",
      }).success,
    ).toBe(false);
  });

  it("form-intake scopes match the template manifest", async () => {
    const { readFile } = await import("node:fs/promises");
    const manifest = JSON.parse(
      await readFile(
        new URL("../../../templates/form-intake/manifest.json", import.meta.url),
        "utf8",
      ),
    );
    expect(Object.keys(manifest.scopes).sort()).toEqual(Object.keys(FORM_INTAKE_SCOPES).sort());
  });
});

describe("bad tokens and policies (issue 3): each has its own code, a 401 or 403", () => {
  // Each case is exercised over HTTP, on both datastores, in packages/server/test:
  // gateway.test.ts, forged-tokens.test.ts, token-model.test.ts, revocation.test.ts,
  // policy-api.test.ts. This table keeps the codes apart.
  const CASES = {
    "alg none": "token_alg_none",
    "HS256 signed with the public key": "token_alg_not_allowed",
    "an embedded jwk/jku/x5u header": "token_untrusted_header",
    "an unknown kid": "token_kid_unknown",
    "a bit-flipped signature": "token_signature_invalid",
    "wrong aud (another app)": "token_wrong_app",
    expired: "token_expired",
    "nbf in the future": "token_not_yet_valid",
    "missing exp": "token_exp_missing",
    "exp beyond the maximum TTL": "token_ttl_exceeds_max",
    "a revoked token": "token_revoked",
    "a token of a paused app": "app_paused",
    "scopes not in the template": "token_scope_unknown",
    "a token passed in the query string": "token_in_query",
  } as const;

  it("no two cases share a code, and each is a 401 or a 403", () => {
    const codes = Object.values(CASES);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect([401, 403]).toContain(ERRORS[code].status);
  });

  it("a custom policy that does not parse or validate is its own code, not a token error", () => {
    expect(ERRORS.policy_invalid.status).toBe(422);
    expect(Object.values(CASES)).not.toContain("policy_invalid");
  });
});
