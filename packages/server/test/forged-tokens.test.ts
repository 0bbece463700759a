import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditFor,
  createApp,
  DATASTORES,
  signAsServer,
  startTestApp,
  type TestApp,
} from "./harness";

/**
 * Tokens signed with the server's real key but carrying claims or headers Trellis never issues:
 * each is refused with its own code, audited, and returns no data.
 */
describe.each(DATASTORES)("correctly signed but unacceptable tokens on %s", (kind) => {
  let t: TestApp;
  let appId: string;
  let now: number;
  const good = () => ({
    iss: "trellis",
    aud: appId,
    sub: "mallory",
    scope: "read",
    labels: [] as unknown,
    env: "dev",
    jti: "tok_forged",
    iat: now,
    nbf: now,
    exp: now + 600,
  });

  beforeAll(async () => {
    t = await startTestApp(kind);
    appId = await createApp(t);
    now = Math.floor(t.clock.now().getTime() / 1000);
  });
  afterAll(() => t?.close());

  const cases: Array<
    [string, () => [Record<string, unknown>, Record<string, unknown>], number, string]
  > = [
    ["the control: a well-formed token", () => [{}, good()], 200, ""],
    [
      "an embedded jwk header",
      () => [{ jwk: { kty: "OKP", crv: "Ed25519", x: "AAAA" } }, good()],
      401,
      "token_untrusted_header",
    ],
    [
      "a jku header",
      () => [{ jku: "https://attacker.example/jwks.json" }, good()],
      401,
      "token_untrusted_header",
    ],
    [
      "an x5u header",
      () => [{ x5u: "https://attacker.example/cert.pem" }, good()],
      401,
      "token_untrusted_header",
    ],
    ["an x5c header", () => [{ x5c: ["MIIB"] }, good()], 401, "token_untrusted_header"],
    [
      "no exp",
      () => {
        const { exp: _e, ...p } = good();
        return [{}, p];
      },
      401,
      "token_exp_missing",
    ],
    [
      "exp beyond the maximum lifetime",
      () => [{}, { ...good(), exp: now + t.config.tokenMaxTtlByEnv.dev + 3600 }],
      401,
      "token_ttl_exceeds_max",
    ],
    [
      "a prod token living longer than prod allows (though dev would)",
      () => [{}, { ...good(), env: "prod", exp: now + t.config.tokenMaxTtlByEnv.prod + 600 }],
      401,
      "token_ttl_exceeds_max",
    ],
    ["iat in the future", () => [{}, { ...good(), iat: now + 600 }], 401, "token_not_yet_valid"],
    ["an unknown environment", () => [{}, { ...good(), env: "moon" }], 401, "token_invalid"],
    [
      "labels that Trellis never issues",
      () => [{}, { ...good(), labels: ["team hr", "x"] }],
      401,
      "token_invalid",
    ],
    ["nbf in the future", () => [{}, { ...good(), nbf: now + 600 }], 401, "token_not_yet_valid"],
    [
      "expired",
      () => [{}, { ...good(), iat: now - 7200, nbf: now - 7200, exp: now - 3600 }],
      401,
      "token_expired",
    ],
    ["another issuer", () => [{}, { ...good(), iss: "someone-else" }], 401, "token_invalid"],
    [
      "another app's audience",
      () => [{}, { ...good(), aud: "app_0000000000000000000000000z" }],
      403,
      "token_wrong_app",
    ],
    [
      "no subject",
      () => {
        const { sub: _s, ...p } = good();
        return [{}, p];
      },
      401,
      "token_invalid",
    ],
    [
      "a scope the template does not define",
      () => [{}, { ...good(), scope: "read admin:everything" }],
      401,
      "token_scope_unknown",
    ],
  ];

  it.each(cases)("%s → %i %s", async (_name, make, status, code) => {
    const [header, payload] = make();
    const token = await signAsServer(t, header, payload);
    const res = await t.call({ method: "GET", url: `/api/v1/apps/${appId}/submissions`, token });
    expect(res.status).toBe(status);
    if (status === 200) return;
    expect(res.body.error.code).toBe(code);
    expect(res.body.items).toBeUndefined();
    const [event] = await auditFor(t.db, res.body.error.request_id);
    expect(event).toMatchObject({ outcome: "denied", error_code: code, action: "submission.list" });
  });
});
