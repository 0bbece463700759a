import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { open, seal } from "../../lib/secrets";

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
}

/**
 * Loads the signing keys, creating the first Ed25519 key when there is none. Private keys are
 * sealed (AES-256-GCM, AAD = kid) before they touch the database.
 * (Rotation and retirement come with the tokens issue.)
 */
export async function loadSigningKeys(
  db: Db,
  masterKey: Buffer,
  clock: Clock,
): Promise<SigningKeys> {
  const select = () =>
    db.query<KeyRow>(
      "SELECT kid, public_jwk, private_jwk_sealed, created_at FROM trellis.signing_keys WHERE retired_at IS NULL ORDER BY created_at",
    );
  let { rows } = await select();
  if (rows.length === 0) {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", {
      crv: "Ed25519",
      extractable: true,
    });
    const kid = newId("key");
    const priv = JSON.stringify(await exportJWK(privateKey));
    await db.query(
      "INSERT INTO trellis.signing_keys (kid, alg, public_jwk, private_jwk_sealed, created_at) VALUES ($1, 'EdDSA', $2, $3, $4)",
      [
        kid,
        JSON.stringify({ ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }),
        seal(masterKey, priv, kid),
        clock.now(),
      ],
    );
    ({ rows } = await select());
  }
  const publics = new Map<string, CryptoKey>();
  const addPublics = async (list: KeyRow[]) => {
    for (const r of list) {
      if (!publics.has(r.kid))
        publics.set(r.kid, (await importJWK(r.public_jwk, "EdDSA")) as CryptoKey);
    }
  };
  await addPublics(rows);
  const newest = rows.at(-1) as KeyRow;
  let privateJwk: JWK;
  try {
    privateJwk = JSON.parse(open(masterKey, newest.private_jwk_sealed, newest.kid));
  } catch {
    throw new Error(
      "The signing keys in the database were sealed with a different master key. Start with the TRELLIS_MASTER_KEY (or data-dir master.key) that created them.",
    );
  }
  const current = { kid: newest.kid, key: (await importJWK(privateJwk, "EdDSA")) as CryptoKey };
  let lastReload = 0;
  // Only the public members, whatever the stored JWK holds.
  // (We store all six members for every key; see the INSERT above.)
  const publicOnly = ({ kty, crv, x, kid, alg, use }: JWK) =>
    ({ kty, crv, x, kid, alg, use }) as PublicJwk;
  let jwksCache = { at: Date.now(), keys: rows.map((r) => publicOnly(r.public_jwk)) };
  return {
    current: () => current,
    async jwks() {
      if (Date.now() - jwksCache.at > 60_000) {
        jwksCache = {
          at: Date.now(),
          keys: (await select()).rows.map((r) => publicOnly(r.public_jwk)),
        };
      }
      return { keys: jwksCache.keys };
    },
    async publicKey(kid) {
      const hit = publics.get(kid);
      if (hit || Date.now() - lastReload < 1000) return hit;
      lastReload = Date.now();
      await addPublics((await select()).rows);
      return publics.get(kid);
    },
  };
}
