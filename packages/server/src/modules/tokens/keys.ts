import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { open, seal } from "../../lib/secrets";
import type { AuditContext, AuditService } from "../audit/audit.service";

/**
 * The master key that seals signing keys at rest: TRELLIS_MASTER_KEY, or a key file created
 * once in the data dir with mode 0600.
 */
export function resolveMasterKey(configured: Buffer | undefined, dataDir: string): Buffer {
  if (configured) return configured;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, "master.key");
  try {
    writeFileSync(file, randomBytes(32).toString("base64"), { flag: "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
  if (key.length !== 32) throw new Error(`${file} does not hold base64 of 32 bytes`);
  return key;
}

interface KeyRow {
  kid: string;
  public_jwk: JWK;
  private_jwk_sealed: string;
  created_at: Date;
}

/** The public members of an Ed25519 verification key, as published. */
export type PublicJwk = Record<"kty" | "crv" | "x" | "kid" | "alg" | "use", string>;

export interface SigningKeys {
  /** The key that signs new tokens (the newest active one). */
  current(): { kid: string; key: CryptoKey };
  /** Public key for a kid; reloads from the database (at most once a second) on a miss. */
  publicKey(kid: string): Promise<CryptoKey | undefined>;
  /** The public JWK set of the keys that still verify (cached for a minute: it is public). */
  jwks(): Promise<{ keys: PublicJwk[] }>;
  /** A new key signs from now on, here at once and on other servers through NOTIFY. */
  rotate(ctx: AuditContext): Promise<{ kid: string; created_at: string }>;
  /** Stops listening for rotations. */
  stop(): Promise<void>;
}

interface Deps {
  db: Db;
  masterKey: Buffer;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  /** Longest token lifetime: a replaced key keeps verifying this long (plus skew), then retires. */
  maxTtl: number;
  /**
   * Safety net behind NOTIFY: how often keys are re-read, so a server that missed a rotation
   * stops signing with a replaced key long before that key retires.
   */
  reloadMs?: number;
}

const CHANNEL = "trellis_keys";
const SKEW_S = 60;

/**
 * The Ed25519 signing keys. The first is created on first start; private halves are sealed
 * (AES-256-GCM, AAD = kid) before they touch the database. Rotation makes a new key sign; an
 * older key retires once a newer one has been signing for longer than the longest token
 * lifetime (every token it signed has expired by then).
 */
export async function loadSigningKeys({
  db,
  masterKey,
  clock,
  audit,
  maxTtl,
  reloadMs = 60_000,
}: Deps): Promise<SigningKeys> {
  const select = () =>
    db.query<KeyRow>(
      "SELECT kid, public_jwk, private_jwk_sealed, created_at FROM trellis.signing_keys WHERE retired_at IS NULL ORDER BY created_at, kid",
    );

  async function insertKey(q: Pick<Db, "query">): Promise<{ kid: string; created: Date }> {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", {
      crv: "Ed25519",
      extractable: true,
    });
    const kid = newId("key");
    const created = clock.now();
    const priv = JSON.stringify(await exportJWK(privateKey));
    await q.query(
      "INSERT INTO trellis.signing_keys (kid, alg, public_jwk, private_jwk_sealed, created_at) VALUES ($1, 'EdDSA', $2, $3, $4)",
      [
        kid,
        JSON.stringify({ ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }),
        seal(masterKey, priv, kid),
        created,
      ],
    );
    return { kid, created };
  }

  // Retire every key that a newer key has replaced for longer than the longest token lifetime.
  // "Newer" is (created_at, kid), the same order as select(): two keys can share a millisecond.
  const retire = () =>
    db.query(
      `UPDATE trellis.signing_keys k SET retired_at = $1
        WHERE k.retired_at IS NULL AND EXISTS (
          SELECT 1 FROM trellis.signing_keys n
           WHERE (n.created_at, n.kid) > (k.created_at, k.kid)
             AND n.created_at < $1::timestamptz - make_interval(secs => $2))`,
      [clock.now(), maxTtl + SKEW_S],
    );

  if ((await select()).rows.length === 0) await insertKey(db);

  const publics = new Map<string, CryptoKey>();
  // Only the public members, whatever the stored JWK holds (we store all six for every key).
  const publicOnly = ({ kty, crv, x, kid, alg, use }: JWK) =>
    ({ kty, crv, x, kid, alg, use }) as PublicJwk;
  let current: { kid: string; key: CryptoKey };
  let jwksCache = { at: 0, keys: [] as PublicJwk[] };

  async function reload() {
    await retire();
    const { rows } = await select();
    for (const r of rows) {
      if (!publics.has(r.kid))
        publics.set(r.kid, (await importJWK(r.public_jwk, "EdDSA")) as CryptoKey);
    }
    for (const kid of publics.keys()) if (!rows.some((r) => r.kid === kid)) publics.delete(kid);
    const newest = rows.at(-1) as KeyRow;
    if (current?.kid !== newest.kid) {
      let privateJwk: JWK;
      try {
        privateJwk = JSON.parse(open(masterKey, newest.private_jwk_sealed, newest.kid));
      } catch {
        throw new Error(
          "The signing keys in the database were sealed with a different master key. Start with the TRELLIS_MASTER_KEY (or data-dir master.key) that created them.",
        );
      }
      current = { kid: newest.kid, key: (await importJWK(privateJwk, "EdDSA")) as CryptoKey };
    }
    jwksCache = { at: Date.now(), keys: rows.map((r) => publicOnly(r.public_jwk)) };
  }

  await reload();
  const stopListening = await db.listen(CHANNEL, () => void reload().catch(() => {}));
  const timer = setInterval(() => void reload().catch(() => {}), reloadMs);
  timer.unref();
  let lastReload = 0;
  return {
    current: () => current,
    async jwks() {
      if (Date.now() - jwksCache.at > 60_000) await reload();
      return { keys: jwksCache.keys };
    },
    async publicKey(kid) {
      const hit = publics.get(kid);
      if (hit || Date.now() - lastReload < 1000) return hit;
      lastReload = Date.now();
      await reload();
      return publics.get(kid);
    },
    async rotate(ctx) {
      const added = await db.transaction(async (tx) => {
        const k = await insertKey(tx);
        await audit.record(
          ctx,
          { action: "key.rotate", resourceType: "signing_key", resourceId: k.kid },
          tx,
        );
        await tx.query("SELECT pg_notify($1, $2)", [CHANNEL, k.kid]);
        return k;
      });
      await reload();
      return { kid: added.kid, created_at: added.created.toISOString() };
    },
    async stop() {
      clearInterval(timer);
      await stopListening();
    },
  };
}
