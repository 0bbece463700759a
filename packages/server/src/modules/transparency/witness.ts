import { type KeyObject, sign } from "node:crypto";
import { parseVerifierKey, verifyCheckpoint, verifyConsistency } from "@trellis/sdk/verify";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { newSealedKey, noteKeyId, openSealedKey, verifierKeyFor } from "./note";

/**
 * Witnessing, both sides, per C2SP tlog-witness and tlog-cosignature/v1 (Ed25519):
 *  - as a witness, this instance cosigns checkpoints of the logs it is configured for, after
 *    checking the log's signature and a consistency proof from the last checkpoint it cosigned
 *    for that log (`POST /witness/add-checkpoint`);
 *  - as a log, it sends each new checkpoint to a witness and keeps the returned cosignature.
 */
const COSIGNATURE_V1 = 0x04;

export interface Cosigner {
  name: string;
  verifierKey: string;
  /** The signature line for a checkpoint body at a POSIX time. */
  cosign(body: string, timestamp: number): string;
}

export function cosignerFromKey(
  name: string,
  privateKey: KeyObject,
  publicKey: Uint8Array,
): Cosigner {
  const id = noteKeyId(name, COSIGNATURE_V1, publicKey);
  return {
    name,
    verifierKey: verifierKeyFor(name, publicKey, COSIGNATURE_V1),
    cosign(body, timestamp) {
      const message = `cosignature/v1\ntime ${timestamp}\n${body}`;
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(timestamp));
      const sig = sign(null, Buffer.from(message, "utf8"), privateKey);
      return `\u2014 ${name} ${Buffer.concat([id, ts, sig]).toString("base64")}`;
    },
  };
}

/** This instance's cosigner key: created once (name `<log origin>/witness`), sealed like the others. */
export async function loadCosigner(
  db: Db,
  clock: Clock,
  masterKey: Buffer,
  name: string,
): Promise<Cosigner> {
  const row = await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(7311204)");
    const { rows } = await tx.query<{
      kid: string;
      name: string;
      public_key: Uint8Array;
      private_jwk_sealed: string;
    }>("SELECT kid, name, public_key, private_jwk_sealed FROM trellis.witness_keys LIMIT 1");
    if (rows[0]) return rows[0];
    const kid = newId("key");
    const { publicKey: raw, sealed } = newSealedKey(masterKey, kid);
    await tx.query(
      `INSERT INTO trellis.witness_keys (kid, name, public_key, private_jwk_sealed, created_at)
       VALUES ($1, $2, $3, $4, $5)`,
      [kid, name, Buffer.from(raw), sealed, clock.now()],
    );
    return { kid, name, public_key: raw, private_jwk_sealed: sealed };
  });
  const publicKey = new Uint8Array(row.public_key);
  return cosignerFromKey(
    row.name,
    openSealedKey(masterKey, row.private_jwk_sealed, row.kid, publicKey),
    publicKey,
  );
}

export type WitnessAnswer =
  | { status: 200; body: string }
  | { status: 409; body: string } // the size the witness has: resend from it
  | { status: 400 | 403 | 404 | 422; body: string };

/**
 * The witness: `logs` are the verifier keys of the logs it witnesses. A request is
 * `old <size>\n`, the consistency proof from that size (base64 lines), a blank line, then the
 * checkpoint. It answers the cosignature line, or 409 with the size it has when `old` is not it.
 */
export function witnessService(deps: { db: Db; clock: Clock; cosigner: Cosigner; logs: string[] }) {
  const byOrigin = new Map(deps.logs.map((k) => [parseVerifierKey(k).name, k]));
  const bad = (status: 400 | 403 | 404 | 422, body: string): WitnessAnswer => ({
    status,
    body: `${body}\n`,
  });

  async function addCheckpoint(request: string): Promise<WitnessAnswer> {
    const m = /^old (0|[1-9][0-9]{0,15})\n((?:[A-Za-z0-9+/]{43}=\n)*)\n([\s\S]+)$/.exec(request);
    if (!m) return bad(400, "malformed request");
    const old = Number(m[1]);
    const proof = (m[2] ?? "")
      .split("\n")
      .filter(Boolean)
      .map((l) => new Uint8Array(Buffer.from(l, "base64")));
    const note = m[3] as string;
    const origin = note.slice(0, note.indexOf("\n"));
    const logKey = byOrigin.get(origin);
    if (!logKey) return bad(404, "unknown log");
    let cp: ReturnType<typeof verifyCheckpoint>;
    try {
      cp = verifyCheckpoint(note, logKey);
    } catch {
      return bad(403, "the checkpoint's signature does not verify");
    }
    return deps.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ tree_size: number; root: Uint8Array }>(
        "SELECT tree_size, root FROM trellis.witness_heads WHERE origin = $1 FOR UPDATE",
        [origin],
      );
      const head = rows[0];
      const have = head ? Number(head.tree_size) : 0;
      if (old !== have) return { status: 409, body: `${have}\n` } as WitnessAnswer;
      if (cp.treeSize < have)
        return bad(400, "the checkpoint is smaller than the last one cosigned");
      if (head) {
        const ok =
          cp.treeSize === have
            ? proof.length === 0 && Buffer.from(head.root).equals(Buffer.from(cp.rootHash))
            : verifyConsistency(have, cp.treeSize, proof, new Uint8Array(head.root), cp.rootHash);
        if (!ok) return bad(422, "the consistency proof does not verify");
      } else if (proof.length > 0) {
        return bad(422, "no proof is expected from size 0");
      }
      await tx.query(
        `INSERT INTO trellis.witness_heads (origin, tree_size, root, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size, root = excluded.root,
           updated_at = excluded.updated_at`,
        [origin, cp.treeSize, Buffer.from(cp.rootHash), deps.clock.now()],
      );
      const body = note.slice(0, note.indexOf("\n\n") + 1);
      const line = deps.cosigner.cosign(body, Math.floor(deps.clock.now().getTime() / 1000));
      return { status: 200, body: `${line}\n` } as WitnessAnswer;
    });
  }

  return { addCheckpoint, verifierKey: deps.cosigner.verifierKey };
}

export type WitnessService = ReturnType<typeof witnessService>;
