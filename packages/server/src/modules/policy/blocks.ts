/**
 * The policy block library: small, reviewed rules an app owner picks from a list. Each block is
 * Cedar text (what the gateway and `explain` evaluate) plus the SQL predicate row-level security
 * applies for the same rule (in each template's migrations, e.g.
 * templates/form-intake/migrations/0002_policy_blocks.sql). test/policy-equivalence.test.ts
 * proves, per block, that both decide alike; blocks/<id>.yaml are the blocks' own test suites.
 *
 * Cedar's model: principal `Trellis::Subject` (sub, scopes, labels, roles, environment), actions
 * per template grouped under `any-read` / `any-write`, resource `Trellis::Record` (owner, labels,
 * reviewer?, state, environment = the app's) inside a `Trellis::App`.
 */

export type BlockId =
  | "owner-read"
  | "owner-write"
  | "app-read"
  | "admin-read"
  | "label-scoped"
  | "assigned-reviewer"
  | "read-only"
  | "prod-writes-only";

export interface TemplateActions {
  /** Action names that read records (each is also the scope a token needs). */
  read: readonly string[];
  /** Action names that change records. */
  write: readonly string[];
  /** The write actions that make a new record (the rest act on an existing one). */
  creates: readonly string[];
  /**
   * Write actions only a record's assigned reviewer performs (approval-queue's `review`): the
   * assigned-reviewer block permits them, owner-write never does (nobody reviews their own).
   */
  reviews?: readonly string[];
}

export interface Block {
  id: BlockId;
  effect: "permit" | "forbid";
  title: string;
  /** For the person picking it: what it allows or stops, in plain words. */
  summary: string;
  /** Cedar policies by id (one per write action for per-action rules). */
  cedar: (actions: TemplateActions) => Record<string, string>;
  /** The row predicate RLS applies, as it reads in the template's migration (documentation). */
  sql: string;
}

const R = "Trellis::Record";
const A = (name: string) => `Trellis::Action::"${name}"`;

const perAction = (
  id: string,
  names: readonly string[],
  body: (action: string) => string,
): Record<string, string> => Object.fromEntries(names.map((a) => [`${id}.${a}`, body(a)]));

/** The write actions a record's owner may take (every one but the reviewer's). */
const ownerWrites = (actions: TemplateActions) =>
  actions.write.filter((a) => !(actions.reviews ?? []).includes(a));

export const BLOCKS: readonly Block[] = [
  {
    id: "owner-read",
    effect: "permit",
    title: "Owner-scoped read",
    summary: "People can read the records they created, if their key may read.",
    cedar: () => ({
      "owner-read": `permit (principal, action in ${A("any-read")}, resource is ${R})
when { principal.scopes.contains("read") && resource.owner == principal.sub };`,
    }),
    sql: "has_scope('read') AND owner = claim_sub()",
  },
  {
    id: "owner-write",
    effect: "permit",
    title: "Owner-scoped write",
    summary:
      "People can create records as themselves and change or delete the records they created, for each action their key allows.",
    cedar: (actions) =>
      perAction(
        "owner-write",
        ownerWrites(actions),
        (a) => `permit (principal, action == ${A(a)}, resource is ${R})
when { principal.scopes.contains("${a}") && resource.owner == principal.sub };`,
      ),
    sql: "has_scope(<action>) AND owner = claim_sub()",
  },
  {
    id: "app-read",
    effect: "permit",
    title: "App-wide read",
    summary: "Keys with the read:all scope can read every record of the app.",
    cedar: () => ({
      "app-read": `permit (principal, action in ${A("any-read")}, resource is ${R})
when { principal.scopes.contains("read:all") };`,
    }),
    sql: "has_scope('read:all')",
  },
  {
    id: "admin-read",
    effect: "permit",
    title: "Admin read",
    summary: "Keys with the admin:read scope can read every record of the app (for support).",
    cedar: () => ({
      "admin-read": `permit (principal, action in ${A("any-read")}, resource is ${R})
when { principal.scopes.contains("admin:read") };`,
    }),
    sql: "has_scope('admin:read')",
  },
  {
    id: "label-scoped",
    effect: "forbid",
    title: "Label-scoped access",
    summary:
      'A key only reaches records that carry every one of its labels (for example team "hr"); a key without labels reaches nothing. New records get the labels of the key that created them.',
    cedar: () => ({
      "label-scoped": `forbid (principal, action, resource is ${R})
unless { !principal.labels.isEmpty() && resource.labels.containsAll(principal.labels) };`,
    }),
    sql: "NOT (cardinality(claim_labels()) > 0 AND labels @> claim_labels())",
  },
  {
    id: "assigned-reviewer",
    effect: "permit",
    title: "Assigned reviewer only",
    summary:
      "The reviewer a record is assigned to can read it and, where the template has review actions (approval-queue), take them; nobody else gets access from this rule.",
    cedar: (actions) => ({
      "assigned-reviewer": `permit (principal, action in ${A("any-read")}, resource is ${R})
when { principal.scopes.contains("read") && resource has reviewer && resource.reviewer == principal.sub };`,
      ...perAction(
        "assigned-reviewer",
        actions.reviews ?? [],
        (a) => `permit (principal, action == ${A(a)}, resource is ${R})
when { principal.scopes.contains("${a}") && resource has reviewer && resource.reviewer == principal.sub };`,
      ),
    }),
    sql: "has_scope('read') AND reviewer = claim_sub(); review actions: has_scope(<action>) AND reviewer = claim_sub()",
  },
  {
    id: "read-only",
    effect: "forbid",
    title: "Read-only app",
    summary: "Nobody can create, change or delete records; reading works as the other rules say.",
    cedar: () => ({
      "read-only": `forbid (principal, action in ${A("any-write")}, resource);`,
    }),
    sql: "false for every write",
  },
  {
    id: "prod-writes-only",
    effect: "forbid",
    title: "Production writes only from production keys",
    summary:
      "In a production app, only keys issued for production can create, change or delete records; test keys can still read.",
    cedar: () => ({
      "prod-writes-only": `forbid (principal, action in ${A("any-write")}, resource)
when { resource.environment == "prod" && principal.environment != "prod" };`,
    }),
    sql: "NOT (claim_app_env() = 'prod' AND claim_env() IS DISTINCT FROM 'prod')",
  },
];

export const BLOCK_IDS = BLOCKS.map((b) => b.id);
const byId = new Map(BLOCKS.map((b) => [b.id, b]));
export const blockById = (id: string): Block | undefined => byId.get(id as BlockId);

/** The block a Cedar policy id belongs to (`owner-write.create` → `owner-write`). */
export const blockOfPolicy = (policyId: string): string => policyId.split(".")[0] ?? policyId;
