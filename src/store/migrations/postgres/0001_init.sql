-- roster store on PostgreSQL, schema version 1: the tables of the SQLite
-- store (../0001_init.sql), column for column. `meta` also holds the schema
-- version, which SQLite keeps in `PRAGMA user_version`.
-- Keys and the columns roster sorts or compares by range use the "C"
-- collation: byte order, as in SQLite, whatever the database's locale.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE accounts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name     TEXT NOT NULL,
    user_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    email_key     TEXT COLLATE "C" NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    first_key     TEXT COLLATE "C" NOT NULL,
    last_key      TEXT COLLATE "C" NOT NULL,
    birth_date    TEXT COLLATE "C",
    phone         TEXT,
    extension     TEXT,
    zip           TEXT,
    role          TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    credential    TEXT NOT NULL,
    password_hash TEXT,
    -- Invited accounts: SHA-256 digest of the one-time activation token.
    activation_digest TEXT,
    invited_at    TEXT COLLATE "C",
    reminded_at   TEXT,
    activated_at  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX accounts_email ON accounts (email_key);
CREATE INDEX accounts_name_dob ON accounts (last_key, first_key, birth_date);

CREATE TABLE groups (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    lwia       BIGINT,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    group_id     BIGINT NOT NULL REFERENCES groups (id),
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    user_manager BOOLEAN NOT NULL,
    PRIMARY KEY (group_id, account_id)
);
CREATE INDEX memberships_account ON memberships (account_id);

-- Messages waiting for delivery by the mail relay. An invitation carries
-- the one-time token for its activation link until it is sent; the account
-- keeps only the token's digest.
CREATE TABLE outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    recipient  TEXT NOT NULL,
    token      TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);

-- One row per applied action; each row's hash covers the previous row's
-- hash (the row at seq - 1), so rows are numbered without gaps. The session
-- numbers them itself: an identity column leaves gaps where a transaction
-- rolled back.
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    revision  BIGINT NOT NULL,
    at        TEXT COLLATE "C" NOT NULL,
    actor     TEXT NOT NULL,
    op        TEXT NOT NULL,
    subject   TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    hash      TEXT NOT NULL
);
