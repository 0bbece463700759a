/**
 * Id prefixes. Every id Trellis mints is `<prefix>_<26 chars of Crockford base32>` (a UUIDv7,
 * so ids sort by creation time); records of app data use plain UUIDv7.
 */
export const ID_PREFIX = {
  app: "app",
  token: "tok",
  event: "evt",
  request: "req",
  key: "key",
  admin: "adm",
  approval: "apr",
} as const;

export type IdKind = keyof typeof ID_PREFIX;

/** A pattern that matches one kind of id, for request validation. */
export const idPattern = (kind: IdKind): RegExp =>
  new RegExp(`^${ID_PREFIX[kind]}_[0-9a-hjkmnp-tv-z]{26}$`);
