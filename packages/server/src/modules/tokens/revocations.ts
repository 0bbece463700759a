import type { TokenInfo } from "@trellis/contracts";
import type { Db, Queryable } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { setToLabels } from "../../lib/labels";
import type { AuditContext, AuditService } from "../audit/audit.service";
import type { TokenClaims } from "./tokens.service";

const CHANNEL = "trellis_revocations";

type Message =
  | { kind: "token"; id: string; expires: number }
  | { kind: "app"; app: string; notBefore: number };

interface Deps {
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  /** Safety net behind NOTIFY: how often every server re-reads the revocation lists. */
  reloadMs?: number;
}

/**
 * Which tokens no longer count: single tokens (revoked_at) and, per app, every token issued
 * before a moment (tokens_not_before). Checked in memory on every governed request; the
 * server that revokes applies it at once, the others hear it through NOTIFY (PostgreSQL) within
 * a second, and all re-read the lists every `reloadMs` in case a notification was missed.
 * The lists only grow (a revocation is final); expired token ids are pruned.
 */
export const revocationsService = ({ db, clock, audit, reloadMs = 5000 }: Deps) => {
  const tokens = new Map<string, number>(); // token id → expiry (epoch s), for pruning
  const appNotBefore = new Map<string, number>(); // app id → tokens with iat below this are revoked
  let stopListening = async () => {};
  let timer: NodeJS.Timeout | undefined;

  const apply = (m: Message) => {
    if (m.kind === "token") tokens.set(m.id, m.expires);
    else appNotBefore.set(m.app, Math.max(appNotBefore.get(m.app) ?? 0, m.notBefore));
  };
  // iat has one-second resolution: a token issued in the same second as a revoke-all counts as
  // before it (the safe side).
  const ceilSeconds = (d: Date) => Math.ceil(d.getTime() / 1000);

  async function reload() {
    const now = clock.now();
    const revoked = await db.query<{ id: string; expires_at: Date }>(
      "SELECT id, expires_at FROM trellis.tokens WHERE revoked_at IS NOT NULL AND expires_at > $1",
      [now],
    );
    for (const r of revoked.rows)
      apply({ kind: "token", id: r.id, expires: r.expires_at.getTime() / 1000 });
    const apps = await db.query<{ id: string; nb: Date }>(
      "SELECT id, tokens_not_before AS nb FROM trellis.apps WHERE tokens_not_before IS NOT NULL",
    );
    for (const r of apps.rows) apply({ kind: "app", app: r.id, notBefore: ceilSeconds(r.nb) });
    const nowS = now.getTime() / 1000;
    for (const [id, exp] of tokens) if (exp <= nowS) tokens.delete(id);
  }

  async function start() {
    await reload();
    stopListening = await db.listen(CHANNEL, (payload) => {
      try {
        apply(JSON.parse(payload) as Message);
      } catch {
        // Not ours or malformed: the periodic reload still covers it.
      }
    });
    timer = setInterval(() => void reload().catch(() => {}), reloadMs);
    timer.unref();
  }

  async function stop() {
    if (timer) clearInterval(timer);
    await stopListening();
  }

  const isRevoked = (c: TokenClaims) =>
    tokens.has(c.tokenId) || c.issuedAt < (appNotBefore.get(c.appId) ?? 0);

  const publish = (tx: Pick<Db, "query">, m: Message) =>
    tx.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(m)]);

  /** Revokes one token of an app; idempotent; audited in the same transaction. */
  async function revoke(ctx: AuditContext, appId: string, tokenId: string): Promise<void> {
    const now = clock.now();
    const message = await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ expires_at: Date }>(
        `UPDATE trellis.tokens SET revoked_at = coalesce(revoked_at, $3)
          WHERE id = $1 AND app_id = $2 RETURNING expires_at`,
        [tokenId, appId, now],
      );
      const row = rows[0];
      if (!row) throw new TrellisError("not_found");
      const m: Message = { kind: "token", id: tokenId, expires: row.expires_at.getTime() / 1000 };
      await audit.record(
        { ...ctx, tokenId },
        { action: "token.revoke", resourceType: "token", resourceId: tokenId },
        tx,
      );
      await publish(tx, m); // delivered at commit, to every listening server
      return m;
    });
    apply(message);
  }

  /**
   * Revokes every token of an app issued up to `now` inside the caller's transaction (pause
   * does this with its own change). Returns what to apply in memory once it has committed.
   */
  async function revokeAllTx(tx: Queryable, appId: string, now: Date): Promise<() => void> {
    const { rowCount } = await tx.query(
      "UPDATE trellis.apps SET tokens_not_before = $2 WHERE id = $1",
      [appId, now],
    );
    if (rowCount === 0) throw new TrellisError("app_not_found");
    const m: Message = { kind: "app", app: appId, notBefore: ceilSeconds(now) };
    await publish(tx, m); // delivered at commit, to every listening server
    return () => apply(m);
  }

  /**
   * An erased person's tokens (audit erasure): revoked, and their subject replaced, inside the
   * caller's transaction, so the token ids left in the audit log no longer lead to the person.
   * Returns how many, and what to apply in memory once it has committed.
   */
  async function forgetSubjectTx(
    tx: Queryable,
    subject: string,
    replacement: string,
  ): Promise<{ tokens: number; after: () => void }> {
    const now = clock.now();
    const { rows } = await tx.query<{ id: string; expires_at: Date }>(
      `UPDATE trellis.tokens SET subject = $2, revoked_at = coalesce(revoked_at, $3)
        WHERE subject = $1 RETURNING id, expires_at`,
      [subject, replacement, now],
    );
    const messages: Message[] = rows.map((r) => ({
      kind: "token",
      id: r.id,
      expires: r.expires_at.getTime() / 1000,
    }));
    for (const m of messages) await publish(tx, m); // delivered at commit
    return { tokens: rows.length, after: () => messages.forEach(apply) };
  }

  /** Revokes every token of an app issued up to now (an app-level not-before). */
  async function revokeAll(ctx: AuditContext, appId: string): Promise<void> {
    const now = clock.now();
    const after = await db.transaction(async (tx) => {
      const applyAfter = await revokeAllTx(tx, appId, now);
      await audit.record(
        ctx,
        { action: "token.revoke_all", resourceType: "app", resourceId: appId },
        tx,
      );
      return applyAfter;
    });
    after();
  }

  /** The app's tokens, newest first (at most 500): metadata only, never a token. */
  async function list(appId: string): Promise<TokenInfo[]> {
    const { rows } = await db.query<{
      id: string;
      subject: string;
      scopes: string[];
      labels: string[];
      environment: TokenInfo["environment"];
      issued_at: Date;
      expires_at: Date;
      revoked_at: Date | null;
    }>(
      `SELECT id, subject, scopes, labels, environment, issued_at, expires_at, revoked_at FROM trellis.tokens
        WHERE app_id = $1 ORDER BY issued_at DESC, id DESC LIMIT 500`,
      [appId],
    );
    const now = clock.now().getTime();
    const nb = (appNotBefore.get(appId) ?? 0) * 1000;
    return rows.map((r) => ({
      token_id: r.id,
      subject: r.subject,
      scopes: r.scopes,
      labels: setToLabels(r.labels),
      environment: r.environment,
      issued_at: r.issued_at.toISOString(),
      expires_at: r.expires_at.toISOString(),
      revoked_at: r.revoked_at?.toISOString() ?? null,
      status:
        r.revoked_at || r.issued_at.getTime() < nb
          ? "revoked"
          : r.expires_at.getTime() <= now
            ? "expired"
            : "active",
    }));
  }

  return {
    start,
    stop,
    reload,
    isRevoked,
    revoke,
    revokeAll,
    revokeAllTx,
    forgetSubjectTx,
    list,
  };
};

export type RevocationsService = ReturnType<typeof revocationsService>;
