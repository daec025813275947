-- roster store, schema version 2: API tokens for `roster serve`.
-- Only the SHA-256 digest of a token is kept; the token is shown once.
-- scope: NULL for an admin token, else a JSON array of the group names
-- whose memberships the token may read and change.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    digest     TEXT NOT NULL UNIQUE,
    scope      TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
-- Groups change (renames, type, LWIA) once `roster serve` publishes them.
ALTER TABLE groups ADD COLUMN updated_at TEXT;
-- A SCIM client's own identifier for an account or group (RFC 7643 §3.1),
-- and the name a SCIM client shows for an account.
ALTER TABLE accounts ADD COLUMN external_id TEXT;
ALTER TABLE accounts ADD COLUMN display_name TEXT;
ALTER TABLE groups ADD COLUMN external_id TEXT;
-- SCIM filters compare user names, emails and family names without case
-- (`lower(x) = lower(?)`); these indexes serve exactly those expressions.
CREATE INDEX accounts_user_name_lower ON accounts (lower(user_name));
CREATE INDEX accounts_email_lower ON accounts (lower(email));
CREATE INDEX accounts_last_name_lower ON accounts (lower(last_name));
-- The SCIM client's name + birth-date rung asks by birth date first.
CREATE INDEX accounts_birth_date ON accounts (birth_date);
-- SCIM ids are the row ids as text: filters on `id` (a client resolving
-- group members) compare that text.
CREATE INDEX accounts_id_text ON accounts (CAST(id AS TEXT));
CREATE INDEX groups_id_text ON groups (CAST(id AS TEXT));
