import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

/** SHA-256 hex. Used for high-entropy secrets only (random tokens), never for passwords. */
export const sha256Hex = (value: string): string =>
  createHash("sha256").update(value).digest("hex");

/** Constant-time comparison of two hex digests of equal length. */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A random secret with a readable prefix, e.g. `trl_admin_…` (256 bits). */
export const randomSecret = (prefix: string): string =>
  `${prefix}_${randomBytes(32).toString("base64url")}`;

/**
 * AES-256-GCM with associated data: the AAD binds a ciphertext to its row (e.g. a key id), so
 * a ciphertext copied onto another row does not decrypt.
 * Format: base64url(iv 12 | tag 16 | ciphertext).
 */
export function seal(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
}

export function open(key: Buffer, sealed: string, aad: string): string {
  const raw = Buffer.from(sealed, "base64url");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
}
