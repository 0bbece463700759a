// Verifying Trellis's audit log from outside: RFC 9162 (RFC 6962) Merkle proofs and C2SP
// signed-note checkpoints. Plain ESM JavaScript with no dependency but node:crypto, so an
// auditor can run it with nothing but Node: `import { verifyInclusion } from "@trellis/sdk/verify"`
// (types in verify.d.ts). Every function refuses what it cannot fully bind: hashes that are not
// 32 bytes, sizes that are not safe non-negative integers, extra or missing proof elements.
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";

const HASH_SIZE = 32;

/** @param {...Uint8Array} parts */
function sha256(...parts) {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** SHA-256(0x00 || data): the hash of one leaf (RFC 9162 §2.1.1). */
export function leafHash(data) {
  return sha256(Uint8Array.of(0), data);
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left, right) {
  return sha256(Uint8Array.of(1), left, right);
}

function isHash(h) {
  return h instanceof Uint8Array && h.length === HASH_SIZE;
}

function isSize(n) {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// Sizes reach 2^53: halving and parity with arithmetic, not 32-bit bit operators.
const half = (n) => Math.floor(n / 2);
const odd = (n) => n % 2 === 1;

/**
 * RFC 9162 §2.1.3.2: true when `proof` proves the leaf with hash `leafHashValue` is at
 * `leafIndex` in the tree of `treeSize` leaves whose root is `rootHash`; false otherwise.
 * Throws a TypeError for arguments of the wrong shape (sizes, 32-byte hashes).
 */
export function verifyInclusion(leafIndex, treeSize, leafHashValue, proof, rootHash) {
  if (!isSize(leafIndex) || !isSize(treeSize))
    throw new TypeError("sizes must be safe integers ≥ 0");
  if (!isHash(leafHashValue) || !isHash(rootHash)) throw new TypeError("hashes must be 32 bytes");
  if (!Array.isArray(proof) || !proof.every(isHash))
    throw new TypeError("the proof must be an array of 32-byte hashes");
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHashValue;
  for (const p of proof) {
    if (sn === 0) return false; // more elements than the path has
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(r, rootHash);
}

/**
 * RFC 9162 §2.1.4.2: true when `proof` proves the tree of `size2` leaves with root `root2`
 * extends the tree of `size1` leaves with root `root1`; false otherwise. Throws a TypeError
 * for arguments of the wrong shape.
 */
export function verifyConsistency(size1, size2, proof, root1, root2) {
  if (!isSize(size1) || !isSize(size2)) throw new TypeError("sizes must be safe integers ≥ 0");
  if (!isHash(root1) || !isHash(root2)) throw new TypeError("hashes must be 32 bytes");
  if (!Array.isArray(proof) || !proof.every(isHash))
    throw new TypeError("the proof must be an array of 32-byte hashes");
  if (size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (size1 === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  if (proof.length === 0) return false;
  // A first tree that is a complete subtree is the proof's implicit first element.
  const path = powerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

function powerOfTwo(n) {
  let x = n;
  while (x > 1) {
    if (odd(x)) return false;
    x = half(x);
  }
  return x === 1;
}

// ── C2SP signed notes and tlog checkpoints ─────────────────────────────────────────────────
const EM_DASH = "\u2014";
const ED25519 = 0x01;

/** The 4-byte key id of a note key: SHA-256(name || "\n" || type || public key)[:4]. */
function keyId(name, type, publicKey) {
  return sha256(new TextEncoder().encode(`${name}\n`), Uint8Array.of(type), publicKey).slice(0, 4);
}

/**
 * A verifier key `<name>+<key id hex>+<base64(type || Ed25519 public key)>` of the given type
 * (0x01 note signer, 0x04 cosignature/v1), its key id checked. Throws an Error when it is not one.
 */
function parseKey(verifierKey, type, what) {
  if (typeof verifierKey !== "string") throw new TypeError("the verifier key must be a string");
  // The key is base64 and may itself hold "+": split at the first two only.
  const first = verifierKey.indexOf("+");
  const second = first < 0 ? -1 : verifierKey.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new Error("a verifier key is <name>+<key id>+<key>");
  const name = verifierKey.slice(0, first);
  const idHex = verifierKey.slice(first + 1, second);
  const b64 = verifierKey.slice(second + 1);
  if (!name || /[\s+]/.test(name)) throw new Error("the key name is empty or has spaces or +");
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error("the key id is not 8 hex digits");
  const raw = new Uint8Array(Buffer.from(b64, "base64"));
  if (raw.length !== 33 || raw[0] !== type || Buffer.from(raw).toString("base64") !== b64)
    throw new Error(`the key is not a base64 Ed25519 ${what} key`);
  const publicKey = raw.slice(1);
  if (Buffer.from(keyId(name, type, publicKey)).toString("hex") !== idHex)
    throw new Error("the key id does not match the key");
  return { name, keyId: idHex, publicKey };
}

/** Parses a note verifier key `<name>+<key id hex>+<base64(0x01 || Ed25519 public key)>`. */
export function parseVerifierKey(verifierKey) {
  return parseKey(verifierKey, ED25519, "note");
}

/** A signed note's text (through its last "\n") and its signature lines; throws if malformed. */
function splitNote(noteText) {
  const split = noteText.indexOf("\n\n");
  if (split < 0 || !noteText.endsWith("\n")) throw new Error("not a signed note");
  return {
    text: noteText.slice(0, split + 1),
    sigLines: noteText.slice(split + 2, -1).split("\n"),
  };
}

const ed25519PublicKey = (raw) =>
  createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") },
    format: "jwk",
  });

/**
 * Verifies a C2SP signed note against a verifier key: the note is well-formed and one of its
 * signatures is by this key (name and key id) and verifies over the note's text. Returns the
 * text (through its last "\n", before the blank line); throws an Error saying what is wrong.
 * What the text must say is the caller's to check (verifyCheckpoint does it for checkpoints).
 */
export function verifyNote(noteText, verifierKey) {
  if (typeof noteText !== "string") throw new TypeError("the note must be a string");
  const key = parseVerifierKey(verifierKey);
  const { text, sigLines } = splitNote(noteText);
  if (sigLines.length === 0 || sigLines.some((l) => !l.startsWith(`${EM_DASH} `)))
    throw new Error("the note's signature lines are malformed");
  const pub = ed25519PublicKey(key.publicKey);
  let verified = false;
  for (const line of sigLines) {
    const [, name, b64, extra] = line.split(" ");
    if (extra !== undefined || !name || !b64) throw new Error("a signature line is malformed");
    if (name !== key.name) continue;
    const sig = new Uint8Array(Buffer.from(b64, "base64"));
    if (sig.length !== 4 + 64) continue;
    if (Buffer.from(sig.slice(0, 4)).toString("hex") !== key.keyId) continue;
    if (cryptoVerify(null, Buffer.from(text, "utf8"), pub, sig.slice(4))) verified = true;
  }
  if (!verified) throw new Error("no signature by this key verifies");
  return text;
}

/**
 * Verifies a C2SP tlog checkpoint (a signed note) against a verifier key: the note verifies
 * (verifyNote) and its body is `<origin>\n<tree size>\n<base64 root hash>\n` (then optional
 * extension lines). The origin must equal the key's name, as Trellis signs it.
 * Returns `{ origin, treeSize, rootHash, extensions }`; throws an Error saying what is wrong.
 */
export function verifyCheckpoint(noteText, verifierKey) {
  if (typeof noteText !== "string") throw new TypeError("the checkpoint must be a string");
  const key = parseVerifierKey(verifierKey);
  const text = verifyNote(noteText, verifierKey);
  const lines = text.slice(0, -1).split("\n");
  const [origin, sizeText, rootB64, ...extensions] = lines;
  if (origin !== key.name) throw new Error("the checkpoint's origin is not the key's name");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText ?? "") || !Number.isSafeInteger(Number(sizeText)))
    throw new Error("the tree size is not a decimal number");
  const rootHash = new Uint8Array(Buffer.from(rootB64 ?? "", "base64"));
  if (rootHash.length !== HASH_SIZE || Buffer.from(rootHash).toString("base64") !== rootB64)
    throw new Error("the root hash is not 32 bytes of base64");
  return { origin, treeSize: Number(sizeText), rootHash, extensions };
}

// ── C2SP tlog-cosignature/v1 (Ed25519) ─────────────────────────────────────────────────────
const COSIGNATURE_V1 = 0x04;

/** A cosigner (witness) verifier key `<name>+<key id>+<base64(0x04 || Ed25519 key)>`, checked. */
export function parseCosignerKey(verifierKey) {
  return parseKey(verifierKey, COSIGNATURE_V1, "cosignature/v1");
}

/**
 * Verifies a witness's cosignature (C2SP tlog-cosignature/v1, Ed25519) on a checkpoint note:
 * a signature line by that witness whose timestamped signature verifies over
 * "cosignature/v1\ntime <t>\n" + the note body. Returns `{ timestamp }`; throws an Error
 * saying what is wrong. (Check the log's own signature with verifyCheckpoint.)
 */
export function verifyCosignature(noteText, witnessKey) {
  if (typeof noteText !== "string") throw new TypeError("the checkpoint must be a string");
  const key = parseCosignerKey(witnessKey);
  const { text: body, sigLines } = splitNote(noteText);
  const pub = ed25519PublicKey(key.publicKey);
  for (const line of sigLines) {
    const [dash, name, b64] = line.split(" ");
    if (dash !== EM_DASH || name !== key.name || !b64) continue;
    const sig = Buffer.from(b64, "base64");
    if (sig.length !== 4 + 8 + 64 || sig.subarray(0, 4).toString("hex") !== key.keyId) continue;
    const timestamp = sig.readBigUInt64BE(4);
    if (timestamp > 2n ** 63n - 1n) continue;
    const message = `cosignature/v1\ntime ${timestamp}\n${body}`;
    if (cryptoVerify(null, Buffer.from(message, "utf8"), pub, sig.subarray(12)))
      return { timestamp: Number(timestamp) };
  }
  throw new Error("no cosignature by this witness verifies");
}

/**
 * RFC 8785 (JSON Canonicalization Scheme) of a JSON value: object keys sorted by UTF-16 code
 * units, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them (which is
 * what RFC 8785 specifies). Throws a TypeError for what JSON cannot hold (non-finite numbers,
 * undefined, functions, bigint).
 */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string")
    return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("a non-finite number is not JSON");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new TypeError(`a ${typeof value} is not JSON`);
}

/**
 * The personal commitment an audit leaf carries (the event's `personal` field):
 * SHA-256(0x02 || salt || RFC 8785({actor_id, personal})). `opening` is what Trellis's proof API
 * returns with an event that was not erased: `{salt (base64, 32 bytes), actor_id, personal}`.
 */
export function personalCommitment(opening) {
  if (!opening || typeof opening !== "object") throw new TypeError("an opening is an object");
  const salt = Buffer.from(String(opening.salt), "base64");
  if (salt.length !== HASH_SIZE || salt.toString("base64") !== opening.salt)
    throw new TypeError("an opening's salt is 32 bytes in base64");
  if (typeof opening.actor_id !== "string") throw new TypeError("an opening names its actor");
  const body = canonicalJson({ actor_id: opening.actor_id, personal: opening.personal ?? null });
  return sha256(Uint8Array.of(2), salt, new TextEncoder().encode(body));
}

/**
 * True when `opening` opens the personal commitment of `event` (an event as its leaf hashed it,
 * e.g. the proof API's `event`): the actor and personal data shown are the ones that were logged.
 */
export function verifyOpening(event, opening) {
  if (!event || typeof event.personal !== "string") return false;
  const want = Buffer.from(event.personal, "base64");
  return want.length === HASH_SIZE && equal(personalCommitment(opening), want);
}
