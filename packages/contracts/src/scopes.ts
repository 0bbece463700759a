/**
 * Scopes are the template's action names. A token carries a subset; the gateway checks the
 * scope a route needs, and row-level security checks the same scopes again in the database.
 */
export const FORM_INTAKE_SCOPES = {
  create: "Submit new entries.",
  read: "Read the entries this subject submitted.",
  "read:all": "Read every entry of the app, whoever submitted it.",
  delete: "Delete (soft) entries this subject can read.",
} as const;

export type FormIntakeScope = keyof typeof FORM_INTAKE_SCOPES;
