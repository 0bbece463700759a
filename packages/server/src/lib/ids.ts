import { ID_PREFIX, type IdKind } from "@trellis/contracts";
import { uuidv7obj } from "uuidv7";

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/** 128 bits as 26 Crockford base32 characters (the TypeID suffix encoding, lower case). */
function base32(bytes: Uint8Array): string {
  // 130 bits of output for 128 bits of input: two leading zero bits, as TypeID does.
  let out = "";
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  for (let i = 25; i >= 0; i--) out += CROCKFORD[Number((value >> BigInt(i * 5)) & 31n)];
  return out;
}

/**
 * A new prefixed, time-sortable id.
 * @example newId("app") // "app_01jf9x…"
 */
export const newId = (kind: IdKind): string => `${ID_PREFIX[kind]}_${base32(uuidv7obj().bytes)}`;

/** A UUIDv7 for app records: time-ordered, so cursor pagination follows creation order. */
export const newRecordId = (): string => uuidv7obj().toString();
