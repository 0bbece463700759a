import type { Principal } from "../modules/policy/engine";
import type { TokenClaims } from "../modules/tokens/tokens.service";

const principals = new WeakMap<TokenClaims, Principal>();

/** The Cedar principal of a verified token (built once per cached claims object). */
export function principalOf(claims: TokenClaims): Principal {
  let p = principals.get(claims);
  if (!p) {
    p = {
      sub: claims.subject,
      scopes: [...claims.scopes].sort(),
      labels: claims.labels,
      roles: [],
      environment: claims.environment,
    };
    principals.set(claims, p);
  }
  return p;
}
