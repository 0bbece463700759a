-- Revocation: one token (tokens.revoked_at, already there) or every token of an app issued
-- before a moment (apps.tokens_not_before). Servers learn of revocations through
-- NOTIFY trellis_revocations and reload the lists periodically as a safety net.
ALTER TABLE trellis.apps ADD COLUMN tokens_not_before timestamptz;
CREATE INDEX tokens_revoked ON trellis.tokens (expires_at) WHERE revoked_at IS NOT NULL;
