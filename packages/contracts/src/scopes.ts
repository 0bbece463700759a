/**
 * Scopes are the template's action names. A token carries a subset; the gateway checks the
 * scope a route needs, and row-level security checks the same scopes again in the database.
 */
export const FORM_INTAKE_SCOPES = {
  create: "Submit new entries.",
  read: "Read entries, as the app's policy blocks allow (by default, the ones this subject submitted).",
  "read:all": "Read every entry of the app, whoever submitted it (with the app-wide read block).",
  "admin:read":
    "Read every entry of the app, for support and administration (with the admin read block).",
  delete: "Delete (soft) entries, as the app's policy blocks allow (by default, your own).",
} as const;

export type FormIntakeScope = keyof typeof FORM_INTAKE_SCOPES;
