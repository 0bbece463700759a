import type {
  ApprovalPending,
  CreateTokenRequest,
  ErrorCode,
  RenewTokenRequest,
  TokenIssued,
} from "@trellis/contracts";
import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { isLabelSet, labelsToSet, setToLabels } from "../../lib/labels";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { SigningKeys } from "./keys";

export const ISSUER = "trellis";
/** Allowed clock difference between servers for exp/nbf/iat, in seconds. */
export const CLOCK_SKEW_S = 5;

export type Environment = "dev" | "staging" | "prod";
const ENVIRONMENTS = new Set<string>(["dev", "staging", "prod"]);

export interface TokenClaims {
  tokenId: string;
  appId: string;
  subject: string;
  scopes: ReadonlySet<string>;
  /** Space-separated, as set into the database claims. */
  scopeString: string;
  /** Row labels as sorted "key=value" strings. */
  labels: readonly string[];
  /** Space-separated, as set into the database claims. */
  labelString: string;
  environment: Environment;
  expiresAt: number; // epoch seconds
  issuedAt: number; // epoch seconds
}

export type VerifyResult =
  | { ok: true; claims: TokenClaims }
  | { ok: false; code: ErrorCode; claims?: TokenClaims };

/** The app facts issuing and renewing need. */
export interface IssuingApp {
  id: string;
  templateScopes: ReadonlySet<string>;
  environment: Environment;
  status: string;
}

interface Deps {
  db: Db;
  keys: SigningKeys;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  defaultTtl: number;
  maxTtlByEnv: Readonly<Record<Environment, number>>;
  /** Cache verified claims per token string until expiry (default on; off only to measure it). */
  verifyCache?: boolean;
}

const CACHE_MAX = 10_000;
const UNTRUSTED_HEADERS = ["jwk", "jku", "x5u", "x5c"];
const MIN_TTL = 60;

export const tokensService = ({
  db,
  keys,
  clock,
  audit,
  defaultTtl,
  maxTtlByEnv,
  verifyCache = true,
}: Deps) => {
  const ttlFor = (env: Environment, asked: number | undefined) =>
    asked ?? Math.min(defaultTtl, maxTtlByEnv[env]);

  function checkScopes(app: IssuingApp, scopes: readonly string[]) {
    const unknown = scopes.filter((s) => !app.templateScopes.has(s));
    if (unknown.length > 0) {
      throw new TrellisError(
        "scope_unknown",
        unknown.map((s) => ({
          path: "/scopes",
          message: `"${s.slice(0, 64)}" is not a scope of this template`,
        })),
      );
    }
  }

  /**
   * Issues a short-lived token for one app. The token is returned once and never stored; the
   * database keeps its id, subject, scopes, labels and expiry. Row and audit event share a
   * transaction.
   */
  async function issue(
    ctx: AuditContext,
    app: IssuingApp,
    req: CreateTokenRequest,
    renewedFrom?: string,
  ): Promise<TokenIssued> {
    if (app.status === "paused") throw new TrellisError("app_paused");
    if (app.status !== "active") throw new TrellisError("app_not_active");
    checkScopes(app, req.scopes);
    const environment = req.environment ?? app.environment;
    const maxTtl = maxTtlByEnv[environment];
    const ttl = ttlFor(environment, req.ttl_seconds);
    if (ttl < MIN_TTL || ttl > maxTtl) {
      throw new TrellisError("ttl_out_of_range", [
        {
          path: "/ttl_seconds",
          message: `must be between ${MIN_TTL} and ${maxTtl} for a ${environment} token`,
        },
      ]);
    }
    const labels = labelsToSet(req.labels);
    const scopes = [...new Set(req.scopes)].sort();
    const tokenId = newId("token");
    const iat = Math.floor(clock.now().getTime() / 1000);
    const exp = iat + ttl;
    const { kid, key } = keys.current();
    const token = await new SignJWT({ scope: scopes.join(" "), labels, env: environment })
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
        `INSERT INTO trellis.tokens (id, app_id, subject, scopes, kid, issued_at, expires_at,
           issued_by, labels, environment, renewed_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          tokenId,
          app.id,
          req.subject,
          scopes,
          kid,
          new Date(iat * 1000),
          new Date(exp * 1000),
          ctx.actorId,
          labels,
          environment,
          renewedFrom ?? null,
        ],
      );
      await audit.record(
        { ...ctx, tokenId },
        {
          action: renewedFrom ? "token.renew" : "token.create",
          resourceType: "token",
          resourceId: tokenId,
        },
        tx,
      );
    });
    return {
      token,
      token_id: tokenId,
      subject: req.subject,
      scopes,
      labels: setToLabels(labels),
      environment,
      expires_at: new Date(exp * 1000).toISOString(),
      ...(renewedFrom ? { renewed_from: renewedFrom } : {}),
    };
  }

  /**
   * Renewal: a fresh token for the same subject, labels and environment, by default with the
   * same scopes. Asking for scopes the token did not have, or a lifetime beyond what its
   * environment allows, does not issue anything: it files an approval request (202).
   */
  async function renew(
    ctx: AuditContext,
    app: IssuingApp,
    tokenId: string,
    req: RenewTokenRequest,
  ): Promise<{ issued: TokenIssued } | { pending: ApprovalPending }> {
    if (app.status === "paused") throw new TrellisError("app_paused");
    const { rows } = await db.query<{
      subject: string;
      scopes: string[];
      labels: string[];
      environment: Environment;
      revoked: boolean;
    }>(
      `SELECT t.subject, t.scopes, t.labels, t.environment,
              (t.revoked_at IS NOT NULL OR t.issued_at < coalesce(a.tokens_not_before, '-infinity')) AS revoked
         FROM trellis.tokens t JOIN trellis.apps a ON a.id = t.app_id
        WHERE t.id = $1 AND t.app_id = $2`,
      [tokenId, app.id],
    );
    const old = rows[0];
    if (!old) throw new TrellisError("not_found");
    if (old.revoked) throw new TrellisError("token_not_renewable");
    const scopes = [...new Set(req.scopes ?? old.scopes)].sort();
    checkScopes(app, scopes);
    const ttl = ttlFor(old.environment, req.ttl_seconds);
    if (ttl < MIN_TTL) {
      throw new TrellisError("ttl_out_of_range", [
        { path: "/ttl_seconds", message: `must be at least ${MIN_TTL}` },
      ]);
    }
    const more = scopes.filter((s) => !old.scopes.includes(s));
    const maxTtl = maxTtlByEnv[old.environment];
    const reasons = [
      ...(more.length > 0 ? [`asks for scopes the token did not have: ${more.join(", ")}`] : []),
      ...(ttl > maxTtl
        ? [`asks for ${ttl} s; a ${old.environment} token may live at most ${maxTtl} s`]
        : []),
    ];
    const request = {
      token_id: tokenId,
      subject: old.subject,
      scopes,
      labels: setToLabels(old.labels),
      environment: old.environment,
      ttl_seconds: ttl,
    };
    if (reasons.length === 0) {
      const issued = await issue(
        ctx,
        app,
        {
          subject: old.subject,
          scopes,
          ttl_seconds: ttl,
          labels: request.labels,
          environment: old.environment,
        },
        tokenId,
      );
      return { issued };
    }
    const id = newId("approval");
    const reason = reasons.join("; ");
    await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO trellis.approval_requests (id, app_id, kind, reason, request, created_at, created_by)
         VALUES ($1, $2, 'token_renewal', $3, $4, $5, $6)`,
        [id, app.id, reason, JSON.stringify(request), clock.now(), ctx.actorId ?? "unknown"],
      );
      await audit.record(
        { ...ctx, tokenId },
        { action: "token.renew", resourceType: "approval_request", resourceId: id },
        tx,
      );
    });
    return { pending: { approval_request_id: id, status: "pending", reason } };
  }

  // Signature verification is cached per token string until the token expires: the result
  // cannot change for the same bytes. Expiry and audience are still checked on every call.
  const cache = new Map<string, TokenClaims>();

  async function verifyUncached(raw: string): Promise<VerifyResult> {
    // The header first, so each kind of forgery gets its own code before any crypto runs.
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(raw);
    } catch {
      return { ok: false, code: "token_malformed" };
    }
    if (typeof header.alg !== "string") return { ok: false, code: "token_malformed" };
    if (header.alg.toLowerCase() === "none") return { ok: false, code: "token_alg_none" };
    if (header.alg !== "EdDSA") return { ok: false, code: "token_alg_not_allowed" };
    // Only our own keys, by kid. A token that brings or points to a key of its own is refused
    // outright, even when our key signed it: nothing we issue carries these.
    if (UNTRUSTED_HEADERS.some((h) => h in header)) {
      return { ok: false, code: "token_untrusted_header" };
    }
    const key = typeof header.kid === "string" ? await keys.publicKey(header.kid) : undefined;
    if (!key) return { ok: false, code: "token_kid_unknown" };
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(raw, key, {
        algorithms: ["EdDSA"],
        issuer: ISSUER,
        requiredClaims: ["exp", "iat", "jti", "sub", "aud"],
        clockTolerance: CLOCK_SKEW_S,
        currentDate: clock.now(),
      }));
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed)
        return { ok: false, code: "token_signature_invalid" };
      if (err instanceof errors.JWTExpired) return { ok: false, code: "token_expired" };
      if (err instanceof errors.JWTClaimValidationFailed) {
        if (err.claim === "nbf") return { ok: false, code: "token_not_yet_valid" };
        if (err.claim === "exp") return { ok: false, code: "token_exp_missing" };
        return { ok: false, code: "token_invalid" };
      }
      if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid)
        return { ok: false, code: "token_malformed" };
      return { ok: false, code: "token_invalid" };
    }
    const { exp, iat, jti, sub, aud, scope, labels, env } = payload;
    if (
      typeof exp !== "number" ||
      typeof iat !== "number" ||
      typeof jti !== "string" ||
      typeof sub !== "string" ||
      typeof aud !== "string" ||
      typeof scope !== "string" ||
      typeof env !== "string" ||
      !ENVIRONMENTS.has(env) ||
      !isLabelSet(labels)
    ) {
      return { ok: false, code: "token_invalid" };
    }
    // iat in the future is a token from a clock we do not share (or a forgery's).
    if (iat > clock.now().getTime() / 1000 + CLOCK_SKEW_S)
      return { ok: false, code: "token_not_yet_valid" };
    const environment = env as Environment;
    if (exp - iat > maxTtlByEnv[environment] + CLOCK_SKEW_S)
      return { ok: false, code: "token_ttl_exceeds_max" };
    const scopes = new Set(scope.split(" ").filter(Boolean));
    const sortedLabels = [...labels].sort();
    return {
      ok: true,
      claims: {
        tokenId: jti,
        appId: aud,
        subject: sub,
        scopes,
        scopeString: [...scopes].join(" "),
        labels: sortedLabels,
        labelString: sortedLabels.join(" "),
        environment,
        expiresAt: exp,
        issuedAt: iat,
      },
    };
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
      if (verifyCache) {
        if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
        cache.set(raw, claims);
      }
    }
    if (clock.now().getTime() / 1000 >= claims.expiresAt + CLOCK_SKEW_S) {
      cache.delete(raw);
      return { ok: false, code: "token_expired" };
    }
    if (claims.appId !== appId) return { ok: false, code: "token_wrong_app", claims };
    return { ok: true, claims };
  }

  return { issue, renew, verify };
};

export type TokensService = ReturnType<typeof tokensService>;
