import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { digestsEqual, randomSecret, sha256Hex } from "../../lib/secrets";

export interface AdminCredentials {
  /** The admin's actor id for a presented bearer token, or undefined when it is not valid. */
  verify(token: string): string | undefined;
}

// Any constant; serializes first-start bootstrap across servers sharing one PostgreSQL.
const BOOTSTRAP_LOCK = 7_311_2025;

/**
 * The control plane's admin credential. TRELLIS_ADMIN_TOKEN when set; otherwise the stored
 * credentials, and on a first start with none a new token is generated, handed to `announce`
 * once, and stored only as its SHA-256 (a 256-bit random secret needs no slow hash).
 */
export async function loadAdminCredentials(
  db: Db,
  clock: Clock,
  configured: string | undefined,
  announce: (token: string) => void,
): Promise<AdminCredentials> {
  const hashes = new Map<string, string>(); // sha256 → actor id
  if (configured) hashes.set(sha256Hex(configured), "admin:env");
  const generated = await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [BOOTSTRAP_LOCK]);
    const { rows } = await tx.query<{ id: string; token_sha256: string }>(
      "SELECT id, token_sha256 FROM trellis.admin_credentials WHERE revoked_at IS NULL",
    );
    for (const r of rows) hashes.set(r.token_sha256, `admin:${r.id}`);
    if (configured || rows.length > 0) return undefined;
    const token = randomSecret("trl_admin");
    const id = newId("admin");
    await tx.query(
      "INSERT INTO trellis.admin_credentials (id, token_sha256, created_at) VALUES ($1, $2, $3)",
      [id, sha256Hex(token), clock.now()],
    );
    hashes.set(sha256Hex(token), `admin:${id}`);
    return token;
  });
  if (generated) announce(generated);
  return {
    verify(token) {
      const h = sha256Hex(token);
      for (const [stored, actor] of hashes) if (digestsEqual(stored, h)) return actor;
      return undefined;
    },
  };
}
