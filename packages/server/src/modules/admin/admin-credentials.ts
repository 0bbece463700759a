import type { AdminRole } from "@trellis/contracts";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { digestsEqual, randomSecret, sha256Hex } from "../../lib/secrets";

/** Who presented an admin credential, and what they may do. */
export interface AdminIdentity {
  actorId: string;
  roles: readonly AdminRole[];
}

export interface AdminCredentials {
  /** The person behind a presented bearer token, or undefined when it is not valid. */
  verify(token: string): Promise<AdminIdentity | undefined>;
}

// Any constant; serializes first-start bootstrap across servers sharing one PostgreSQL.
const BOOTSTRAP_LOCK = 7_311_2025;

/** The roles of the first credential (generated or TRELLIS_ADMIN_TOKEN): the platform owner. */
const OWNER_ROLES: readonly AdminRole[] = ["admin", "steward"];

/**
 * The control plane's credentials. TRELLIS_ADMIN_TOKEN when set (actor `admin:env`); the
 * stored credentials, looked up by SHA-256 on every call (so a revoked one stops at once, on
 * every server); and on a first start with none a new token is generated, handed to
 * `announce` once, and stored only as its SHA-256 (a 256-bit random secret needs no slow hash).
 */
export async function loadAdminCredentials(
  db: Db,
  clock: Clock,
  configured: string | undefined,
  announce: (token: string) => void,
): Promise<AdminCredentials> {
  const envHash = configured ? sha256Hex(configured) : undefined;
  const generated = await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [BOOTSTRAP_LOCK]);
    const { rows } = await tx.query(
      "SELECT 1 FROM trellis.admin_credentials WHERE revoked_at IS NULL LIMIT 1",
    );
    if (configured || rows.length > 0) return undefined;
    const token = randomSecret("trl_admin");
    await tx.query(
      `INSERT INTO trellis.admin_credentials (id, token_sha256, created_at, name, roles)
       VALUES ($1, $2, $3, 'first admin', $4)`,
      [newId("admin"), sha256Hex(token), clock.now(), OWNER_ROLES],
    );
    return token;
  });
  if (generated) announce(generated);
  return {
    async verify(token) {
      const h = sha256Hex(token);
      if (envHash && digestsEqual(envHash, h)) return { actorId: "admin:env", roles: OWNER_ROLES };
      const { rows } = await db.query<{ id: string; roles: AdminRole[] }>(
        "SELECT id, roles FROM trellis.admin_credentials WHERE token_sha256 = $1 AND revoked_at IS NULL",
        [h],
      );
      const row = rows[0];
      return row ? { actorId: `admin:${row.id}`, roles: row.roles } : undefined;
    },
  };
}
