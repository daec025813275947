-- roster store, schema version 3: ids that are never reused, and token
-- scopes bound to group ids.
--
-- Without AUTOINCREMENT SQLite gives a new row the largest id + 1, so the
-- id of the last account or group deleted went to the next one created: a
-- SCIM client's stale id then named someone else. AUTOINCREMENT keeps the
-- largest id ever used in sqlite_sequence. SQLite cannot add it to a table,
-- so accounts and groups are rebuilt, with the two tables that refer to
-- them (children first, so no foreign key ever points at a dropped table;
-- renaming a table rewrites the references to it).

CREATE TABLE accounts_v3 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name     TEXT NOT NULL,
    user_key      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    first_key     TEXT NOT NULL,
    last_key      TEXT NOT NULL,
    birth_date    TEXT,
    phone         TEXT,
    extension     TEXT,
    zip           TEXT,
    role          TEXT NOT NULL,
    active        INTEGER NOT NULL,
    credential    TEXT NOT NULL,
    password_hash TEXT,
    -- Invited accounts: SHA-256 digest of the one-time activation token.
    activation_digest TEXT,
    invited_at    TEXT,
    reminded_at   TEXT,
    activated_at  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    external_id   TEXT,
    display_name  TEXT
);
INSERT INTO accounts_v3 (id, user_name, user_key, email, email_key, first_name, last_name,
        first_key, last_key, birth_date, phone, extension, zip, role, active, credential,
        password_hash, activation_digest, invited_at, reminded_at, activated_at, created_at,
        updated_at, external_id, display_name)
    SELECT id, user_name, user_key, email, email_key, first_name, last_name,
        first_key, last_key, birth_date, phone, extension, zip, role, active, credential,
        password_hash, activation_digest, invited_at, reminded_at, activated_at, created_at,
        updated_at, external_id, display_name
    FROM accounts;

CREATE TABLE groups_v3 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    lwia        INTEGER,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT,
    external_id TEXT
);
INSERT INTO groups_v3 (id, name, type, lwia, active, created_at, updated_at, external_id)
    SELECT id, name, type, lwia, active, created_at, updated_at, external_id FROM groups;

CREATE TABLE memberships_v3 (
    group_id     INTEGER NOT NULL REFERENCES groups_v3 (id),
    account_id   INTEGER NOT NULL REFERENCES accounts_v3 (id),
    user_manager INTEGER NOT NULL,
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;
INSERT INTO memberships_v3 (group_id, account_id, user_manager)
    SELECT group_id, account_id, user_manager FROM memberships;

CREATE TABLE outbox_v3 (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts_v3 (id),
    recipient  TEXT NOT NULL,
    token      TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
INSERT INTO outbox_v3 (id, kind, account_id, recipient, token, created_at, sent_at)
    SELECT id, kind, account_id, recipient, token, created_at, sent_at FROM outbox;

DROP TABLE memberships;
DROP TABLE outbox;
DROP TABLE accounts;
DROP TABLE groups;
ALTER TABLE accounts_v3 RENAME TO accounts;
ALTER TABLE groups_v3 RENAME TO groups;
ALTER TABLE memberships_v3 RENAME TO memberships;
ALTER TABLE outbox_v3 RENAME TO outbox;

-- The indexes of versions 1 and 2, dropped with their tables.
CREATE INDEX accounts_email ON accounts (email_key);
CREATE INDEX accounts_name_dob ON accounts (last_key, first_key, birth_date);
CREATE INDEX memberships_account ON memberships (account_id);
CREATE INDEX accounts_user_name_lower ON accounts (lower(user_name));
CREATE INDEX accounts_email_lower ON accounts (lower(email));
CREATE INDEX accounts_last_name_lower ON accounts (lower(last_name));
CREATE INDEX accounts_birth_date ON accounts (birth_date);
CREATE INDEX accounts_id_text ON accounts (CAST(id AS TEXT));
CREATE INDEX groups_id_text ON groups (CAST(id AS TEXT));

-- Token scopes were group names: a renamed group lost its tokens and a
-- group made again under a deleted one's name inherited them. They become
-- the groups' ids. A scope naming a group that no longer exists (or that
-- cannot be read) is left as it was: it no longer reads as a scope, and the
-- token is refused rather than let through.
UPDATE tokens SET scope = (
        SELECT json_group_array(id) FROM (
            SELECT g.id FROM json_each(tokens.scope) j JOIN groups g ON g.name = j.value
            ORDER BY g.id))
    WHERE scope IS NOT NULL
      AND json_valid(scope)
      AND json_type(scope) = 'array'
      AND NOT EXISTS (
          SELECT 1 FROM json_each(tokens.scope) j
          WHERE j.type <> 'text' OR NOT EXISTS (SELECT 1 FROM groups g WHERE g.name = j.value));
