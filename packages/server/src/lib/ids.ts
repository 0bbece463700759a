import { ID_PREFIX, type IdKind } from "@trellis/contracts";
import { uuidv7obj } from "uuidv7";

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

/**
 * A new prefixed, time-sortable id.
 * @example newId("app") // "app_01jf9x…"
 */
export const newId = (kind: IdKind): string => `${ID_PREFIX[kind]}_${base32(uuidv7obj().bytes)}`;

/** A UUIDv7 for app records: time-ordered, so cursor pagination follows creation order. */
export const newRecordId = (): string => uuidv7obj().toString();
