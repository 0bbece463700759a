import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from "node:crypto";
import { parseVerifierKey, verifyNote } from "@trellis/sdk/verify";
import type { Db } from "../../db/db";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import { open, seal } from "../../lib/secrets";

/**
 * C2SP signed notes (https://c2sp.org/signed-note) with an Ed25519 key, and the tlog
 * checkpoint body (https://c2sp.org/tlog-checkpoint): `<origin>\n<size>\n<base64 root>\n`.
 */
const ED25519 = 0x01;

export interface NoteSigner {
  origin: string;
  /** `<name>+<key id hex>+<base64(0x01 || public key)>`: what verifiers configure. */
  verifierKey: string;
  publicKey: Uint8Array;
  signCheckpoint(treeSize: number, root: Uint8Array): string;
  /** A signed statement of the log about itself (see {@link statementBody}). */
  signStatement(kind: StatementKind, fields: Record<string, string | number>): string;
}

/**
 * What the log signs besides checkpoints: the operations that take data out of the log
 * (retention's prune, a GDPR erasure). Their events carry the signed note in `diff.statement`,
 * so `audit verify` can tell the server's own prune or erasure from one forged by whoever holds
 * only the database: the key is sealed under the master key, which the database never sees.
 */
export type StatementKind = "audit.prune" | "audit.erase";

/**
 * A statement's note text: `<origin>\ntrellis/<kind>\n<name> <value>\n…`. Its second line is
 * never a decimal number, so no statement reads as a checkpoint and no checkpoint as a statement.
 */
export function statementBody(
  origin: string,
  kind: StatementKind,
  fields: Record<string, string | number>,
): string {
  const lines = Object.entries(fields).map(([k, v]) => {
    const text = String(v);
    if (!/^[a-z_]+$/.test(k) || /[\s]/.test(text)) throw new Error(`bad statement field ${k}`);
    return `${k} ${text}\n`;
  });
  return `${origin}\ntrellis/${kind}\n${lines.join("")}`;
}

/** What an erasure's statement signs for the rows it erased: SHA-256 of their event ids, in seq order. */
export function erasureDigest(eventIds: readonly string[]): string {
  return createHash("sha256").update(eventIds.join("\n")).digest("hex");
}

/**
 * A statement verified with the log's verifier key: its fields, or an Error saying what is wrong
 * (not signed by this key, another log's, another kind).
 */
export function verifyStatement(
  note: unknown,
  verifierKey: string,
  kind: StatementKind,
): Record<string, string> {
  if (typeof note !== "string") throw new Error("it carries no signed statement");
  const text = verifyNote(note, verifierKey);
  const [origin, what, ...lines] = text.slice(0, -1).split("\n");
  if (origin !== parseVerifierKey(verifierKey).name)
    throw new Error("the statement is another log's");
  if (what !== `trellis/${kind}`) throw new Error(`the statement is not an ${kind}`);
  const fields: Record<string, string> = {};
  for (const l of lines) {
    const sp = l.indexOf(" ");
    if (sp <= 0) throw new Error("a statement line is malformed");
    fields[l.slice(0, sp)] = l.slice(sp + 1);
  }
  return fields;
}

/** A signed-note key id: SHA-256(name || "\n" || key type || public key)[:4]. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): Buffer {
  return createHash("sha256")
    .update(`${name}\n`)
    .update(Uint8Array.of(type))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

/** A verifier key `<name>+<key id hex>+<base64(type || key)>` (type 0x01 notes, 0x04 cosignatures). */
export function verifierKeyFor(name: string, publicKey: Uint8Array, type = ED25519): string {
  const raw = Buffer.concat([Buffer.of(type), publicKey]).toString("base64");
  return `${name}+${noteKeyId(name, type, publicKey).toString("hex")}+${raw}`;
}

/** A new Ed25519 key: its raw public key and its private key sealed under the master key. */
export function newSealedKey(masterKey: Buffer, kid: string) {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    publicKey: new Uint8Array(
      Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url"),
    ),
    sealed: seal(masterKey, JSON.stringify(privateKey.export({ format: "jwk" })), kid),
  };
}

/** The private key of a sealed row, checked against its stored public key. */
export function openSealedKey(
  masterKey: Buffer,
  sealed: string,
  kid: string,
  publicKey: Uint8Array,
): KeyObject {
  const privateKey = createPrivateKey({
    key: JSON.parse(open(masterKey, sealed, kid)),
    format: "jwk",
  });
  const derived = createPublicKey(privateKey).export({ format: "jwk" }).x as string;
  if (Buffer.from(derived, "base64url").compare(Buffer.from(publicKey)) !== 0)
    throw new Error(`The key ${kid} does not match its stored public key.`);
  return privateKey;
}

export function checkpointBody(origin: string, treeSize: number, root: Uint8Array): string {
  return `${origin}\n${treeSize}\n${Buffer.from(root).toString("base64")}\n`;
}

/** A signer for a key in hand (tests and tools; the server uses loadNoteSigner). */
export function noteSignerFromKey(
  origin: string,
  privateKey: KeyObject,
  publicKey: Uint8Array,
): NoteSigner {
  const id = noteKeyId(origin, ED25519, publicKey);
  const signNote = (body: string) => {
    const sig = sign(null, Buffer.from(body, "utf8"), privateKey);
    return `${body}\n\u2014 ${origin} ${Buffer.concat([id, sig]).toString("base64")}\n`;
  };
  return {
    origin,
    publicKey,
    verifierKey: verifierKeyFor(origin, publicKey),
    signCheckpoint: (treeSize, root) => signNote(checkpointBody(origin, treeSize, root)),
    signStatement: (kind, fields) => signNote(statementBody(origin, kind, fields)),
  };
}

/**
 * The checkpoint signing key: created on first start (origin `trellis-audit/<id>`), its
 * private part sealed under the master key like the token keys; every server loads the same.
 */
export async function loadNoteSigner(db: Db, clock: Clock, masterKey: Buffer): Promise<NoteSigner> {
  const row = await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(7311203)");
    const { rows } = await tx.query<{
      kid: string;
      origin: string;
      public_key: Uint8Array;
      private_jwk_sealed: string;
    }>(
      "SELECT kid, origin, public_key, private_jwk_sealed FROM trellis.audit_log_keys ORDER BY created_at LIMIT 1",
    );
    if (rows[0]) return rows[0];
    const kid = newId("key");
    const origin = `trellis-audit/${kid.slice(-12)}`;
    const { publicKey: raw, sealed } = newSealedKey(masterKey, kid);
    await tx.query(
      `INSERT INTO trellis.audit_log_keys (kid, origin, public_key, private_jwk_sealed, created_at)
       VALUES ($1, $2, $3, $4, $5)`,
      [kid, origin, Buffer.from(raw), sealed, clock.now()],
    );
    return { kid, origin, public_key: raw, private_jwk_sealed: sealed };
  });
  const publicKey = new Uint8Array(row.public_key);
  const privateKey = openSealedKey(masterKey, row.private_jwk_sealed, row.kid, publicKey);
  return noteSignerFromKey(row.origin, privateKey, publicKey);
}
