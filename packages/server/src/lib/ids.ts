import { randomFillSync } from "node:crypto";
import { ID_PREFIX, type IdKind } from "@trellis/contracts";
import { V7Generator } from "uuidv7";

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * 128 bits as 26 Crockford base32 characters, lower case: the TypeID suffix encoding (130
 * bits of output, the first two always zero). A small bit accumulator, no BigInt: ids are
 * minted on every request.
 * @example base32(new Uint8Array(16)) // "00000000000000000000000000"
 */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 2; // the two leading zero bits
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

// Cryptographically strong random words drawn from a pooled buffer: the library's default
// asks the OS for 4 bytes per call, which showed up as ~4% of a governed read's CPU.
const POOL = new Uint32Array(1024);
let next = POOL.length;
const pooledRandom = {
  nextUint32(): number {
    if (next === POOL.length) {
      randomFillSync(POOL);
      next = 0;
    }
    return POOL[next++] as number;
  },
};
const generator = new V7Generator(pooledRandom);
const uuidv7obj = () => generator.generate();

/**
 * A new prefixed, time-sortable id.
 * @example newId("app") // "app_01jf9x…"
 */
export const newId = (kind: IdKind): string => `${ID_PREFIX[kind]}_${base32(uuidv7obj().bytes)}`;

/** A UUIDv7 for app records: time-ordered, so cursor pagination follows creation order. */
export const newRecordId = (): string => uuidv7obj().toString();
