-- roster store on PostgreSQL, schema version 2: the twin of
-- ../0002_tokens.sql (API tokens for `roster serve`, SCIM-only values).
-- Only the SHA-256 digest of a token is kept; the token is shown once.
-- scope: NULL for an admin token, else a JSON array of the group names
-- whose memberships the token may read and change.
CREATE TABLE tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    digest     TEXT NOT NULL UNIQUE,
    scope      TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
-- Groups change (renames, type, LWIA) once `roster serve` publishes them.
-- A SCIM client's own identifier for an account or group (RFC 7643 §3.1),
-- and the name a SCIM client shows for an account.
-- SCIM filters compare and sort these columns: "C" makes that byte order,
-- as on SQLite, whatever the database's locale.
ALTER TABLE groups
    ADD COLUMN updated_at TEXT COLLATE "C",
    ADD COLUMN external_id TEXT COLLATE "C",
    ALTER COLUMN type TYPE TEXT COLLATE "C",
    ALTER COLUMN created_at TYPE TEXT COLLATE "C";
ALTER TABLE accounts
    ADD COLUMN external_id TEXT COLLATE "C",
    ADD COLUMN display_name TEXT COLLATE "C",
    ALTER COLUMN user_name TYPE TEXT COLLATE "C",
    ALTER COLUMN email TYPE TEXT COLLATE "C",
    ALTER COLUMN first_name TYPE TEXT COLLATE "C",
    ALTER COLUMN last_name TYPE TEXT COLLATE "C",
    ALTER COLUMN phone TYPE TEXT COLLATE "C",
    ALTER COLUMN extension TYPE TEXT COLLATE "C",
    ALTER COLUMN zip TYPE TEXT COLLATE "C",
    ALTER COLUMN role TYPE TEXT COLLATE "C",
    ALTER COLUMN created_at TYPE TEXT COLLATE "C",
    ALTER COLUMN updated_at TYPE TEXT COLLATE "C";
-- SCIM filters compare user names, emails and family names without case
-- (`lower(x) = lower($1)`); these indexes serve exactly those expressions.
CREATE INDEX accounts_user_name_lower ON accounts (lower(user_name));
CREATE INDEX accounts_email_lower ON accounts (lower(email));
CREATE INDEX accounts_last_name_lower ON accounts (lower(last_name));
-- The SCIM client's name + birth-date rung asks by birth date first.
CREATE INDEX accounts_birth_date ON accounts (birth_date);
-- SCIM ids are the row ids as text: filters on `id` (a client resolving
-- group members) compare that text.
CREATE INDEX accounts_id_text ON accounts ((CAST(id AS TEXT)));
CREATE INDEX groups_id_text ON groups ((CAST(id AS TEXT)));
