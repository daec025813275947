-- roster store, schema version 1.
-- Keys (*_key) hold the normalized forms the resolution ladder compares:
-- lower-cased user names and emails, NFC + case-folded names.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
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
    updated_at    TEXT NOT NULL
);
CREATE INDEX accounts_email ON accounts (email_key);
CREATE INDEX accounts_name_dob ON accounts (last_key, first_key, birth_date);

CREATE TABLE groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    lwia       INTEGER,
    active     INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    group_id     INTEGER NOT NULL REFERENCES groups (id),
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    user_manager INTEGER NOT NULL,
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;
CREATE INDEX memberships_account ON memberships (account_id);

-- Messages waiting for delivery by the mail relay. An invitation carries
-- the one-time token for its activation link until it is sent; the account
-- keeps only the token's digest.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    recipient  TEXT NOT NULL,
    token      TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);

-- One row per applied action; each row's hash covers the previous row's
-- hash (the row at seq - 1), so rows are numbered without gaps.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    revision  INTEGER NOT NULL,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    op        TEXT NOT NULL,
    subject   TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    hash      TEXT NOT NULL
);
