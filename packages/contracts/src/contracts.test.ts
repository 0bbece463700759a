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
