/** SHA-256(0x00 || data): the hash of one leaf (RFC 9162 §2.1.1). */
export function leafHash(data: Uint8Array): Uint8Array;
/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array;
/**
 * RFC 9162 §2.1.3.2. True when the proof is valid; false otherwise; a TypeError for arguments
 * of the wrong shape (sizes not safe integers ≥ 0, hashes not 32 bytes).
 * @example verifyInclusion(p.leaf_index, p.tree_size, leafHash(eventBytes), proofHashes, root)
 */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: Uint8Array[],
  rootHash: Uint8Array,
): boolean;
/** RFC 9162 §2.1.4.2, with the same rules. */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean;
/** A note verifier key `<name>+<key id>+<base64(0x01 || Ed25519 key)>`, checked. */
export function parseVerifierKey(verifierKey: string): {
  name: string;
  keyId: string;
  publicKey: Uint8Array;
};
/** A verified C2SP tlog checkpoint. */
export interface VerifiedCheckpoint {
  origin: string;
  treeSize: number;
  rootHash: Uint8Array;
  extensions: string[];
}
/**
 * Verifies a C2SP signed note's signature by this key; returns the note's text (through its last
 * newline). Throws an Error saying what is wrong.
 */
export function verifyNote(noteText: string, verifierKey: string): string;
/** Verifies a signed checkpoint against a verifier key; throws an Error saying what is wrong. */
export function verifyCheckpoint(noteText: string, verifierKey: string): VerifiedCheckpoint;
/** A witness (cosigner) verifier key `<name>+<key id>+<base64(0x04 || Ed25519 key)>`, checked. */
export function parseCosignerKey(verifierKey: string): {
  name: string;
  keyId: string;
  publicKey: Uint8Array;
};
/** Verifies a witness's C2SP cosignature/v1 on a checkpoint; throws an Error saying what is wrong. */
export function verifyCosignature(noteText: string, witnessKey: string): { timestamp: number };
/** RFC 8785 canonical JSON of a JSON value; throws a TypeError for what is not JSON. */
export function canonicalJson(value: unknown): string;
/** What opens an audit event's personal commitment (the proof API's `opening`). */
export interface PersonalOpening {
  /** base64 of 32 bytes. */
  salt: string;
  actor_id: string;
  personal: unknown;
}
/** SHA-256(0x02 || salt || RFC 8785({actor_id, personal})). */
export function personalCommitment(opening: PersonalOpening): Uint8Array;
/** True when `opening` opens `event.personal` (the event as its leaf hashed it). */
export function verifyOpening(event: { personal?: unknown }, opening: PersonalOpening): boolean;
