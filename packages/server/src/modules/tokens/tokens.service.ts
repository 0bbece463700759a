import type { CreateTokenRequest, ErrorCode, TokenIssued } from "@trellis/contracts";
import { errors, jwtVerify, SignJWT } from "jose";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { SigningKeys } from "./keys";

export const ISSUER = "trellis";
/** Allowed clock difference between servers for exp/nbf/iat, in seconds. */
export const CLOCK_SKEW_S = 5;

export interface TokenClaims {
  tokenId: string;
  appId: string;
  subject: string;
  scopes: ReadonlySet<string>;
  /** Space-separated, as set into the database claims. */
  scopeString: string;
  expiresAt: number; // epoch seconds
  issuedAt: number; // epoch seconds
}

export type VerifyResult =
  | { ok: true; claims: TokenClaims }
  | { ok: false; code: ErrorCode; claims?: TokenClaims };

interface Deps {
  db: Db;
  keys: SigningKeys;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  defaultTtl: number;
  maxTtl: number;
}

const CACHE_MAX = 10_000;
const UNTRUSTED_HEADERS = ["jwk", "jku", "x5u", "x5c"];
class UntrustedHeader extends Error {}

export const tokensService = ({ db, keys, clock, audit, defaultTtl, maxTtl }: Deps) => {
  /**
   * Issues a short-lived token for one app. The token is returned once and never stored; the
   * database keeps its id, subject, scopes and expiry. Row and audit event share a transaction.
   */
  async function issue(
    ctx: AuditContext,
    app: { id: string; templateScopes: ReadonlySet<string> },
    req: CreateTokenRequest,
  ): Promise<TokenIssued> {
    const unknown = req.scopes.filter((s) => !app.templateScopes.has(s));
    if (unknown.length > 0) {
      throw new TrellisError(
        "scope_unknown",
        unknown.map((s) => ({
          path: "/scopes",
          message: `"${s}" is not a scope of this template`,
        })),
      );
    }
    const ttl = req.ttl_seconds ?? defaultTtl;
    if (ttl < 60 || ttl > maxTtl) {
      throw new TrellisError("ttl_out_of_range", [
        { path: "/ttl_seconds", message: `must be between 60 and ${maxTtl}` },
      ]);
    }
    const scopes = [...new Set(req.scopes)].sort();
    const tokenId = newId("token");
    const now = clock.now();
    const iat = Math.floor(now.getTime() / 1000);
    const exp = iat + ttl;
    const { kid, key } = keys.current();
    const token = await new SignJWT({ scope: scopes.join(" ") })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(app.id)
      .setSubject(req.subject)
      .setJti(tokenId)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .sign(key);
    await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO trellis.tokens (id, app_id, subject, scopes, kid, issued_at, expires_at, issued_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          tokenId,
          app.id,
          req.subject,
          scopes,
          kid,
          new Date(iat * 1000),
          new Date(exp * 1000),
          ctx.actorId,
        ],
      );
      await audit.record(
        { ...ctx, tokenId },
        { action: "token.create", resourceType: "token", resourceId: tokenId },
        tx,
      );
    });
    return {
      token,
      token_id: tokenId,
      subject: req.subject,
      scopes,
      expires_at: new Date(exp * 1000).toISOString(),
    };
  }

  // Signature verification is cached per token string until the token expires: the result
  // cannot change for the same bytes. Expiry and audience are still checked on every call.
  const cache = new Map<string, TokenClaims>();

  async function verifyUncached(raw: string): Promise<VerifyResult> {
    try {
      const { payload } = await jwtVerify(
        raw,
        async (header) => {
          // Only our own keys, by kid. A token that brings or points to a key of its own is
          // refused outright, even when our key signed it: nothing we issue carries these.
          if (UNTRUSTED_HEADERS.some((h) => h in header)) throw new UntrustedHeader();
          const key = header.kid ? await keys.publicKey(header.kid) : undefined;
          if (!key) throw new errors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: ["EdDSA"],
          issuer: ISSUER,
          requiredClaims: ["exp", "iat", "jti", "sub", "aud"],
          clockTolerance: CLOCK_SKEW_S,
          currentDate: clock.now(),
        },
      );
      const { exp, iat, jti, sub, aud, scope } = payload as Record<string, unknown>;
      if (
        typeof exp !== "number" ||
        typeof iat !== "number" ||
        typeof jti !== "string" ||
        typeof sub !== "string" ||
        typeof aud !== "string" ||
        typeof scope !== "string" ||
        exp - iat > maxTtl + CLOCK_SKEW_S
      ) {
        return { ok: false, code: "token_invalid" };
      }
      const scopes = new Set(scope.split(" ").filter(Boolean));
      return {
        ok: true,
        claims: {
          tokenId: jti,
          appId: aud,
          subject: sub,
          scopes,
          scopeString: [...scopes].join(" "),
          expiresAt: exp,
          issuedAt: iat,
        },
      };
    } catch (err) {
      if (err instanceof UntrustedHeader) return { ok: false, code: "token_untrusted_header" };
      if (err instanceof errors.JWTExpired) return { ok: false, code: "token_expired" };
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === "nbf")
        return { ok: false, code: "token_not_yet_valid" };
      return { ok: false, code: "token_invalid" };
    }
  }

  /**
   * Verifies a bearer token for the app named in the URL. Returns a value, not an exception:
   * denials are an expected outcome on the hot path.
   */
  async function verify(raw: string, appId: string): Promise<VerifyResult> {
    let claims = cache.get(raw);
    if (!claims) {
      const result = await verifyUncached(raw);
      if (!result.ok) return result;
      claims = result.claims;
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
      cache.set(raw, claims);
    }
    if (clock.now().getTime() / 1000 >= claims.expiresAt + CLOCK_SKEW_S) {
      cache.delete(raw);
      return { ok: false, code: "token_expired" };
    }
    if (claims.appId !== appId) return { ok: false, code: "token_wrong_app", claims };
    return { ok: true, claims };
  }

  return { issue, verify };
};

export type TokensService = ReturnType<typeof tokensService>;
