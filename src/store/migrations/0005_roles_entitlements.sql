-- roster store, schema version 5: several roles an account, entitlements
-- and case managers (SPEC §9). Each account's one role moves to
-- account_roles; the `role` column stays, emptied and no longer read. The
-- audit log is left as it was, so its chain still verifies.
--
-- No foreign keys to accounts here: SQLite rebuilds a table to change it
-- (0003 rebuilt accounts), and a rebuild under foreign keys that point at
-- it fails. Deleting an account deletes its roles and entitlements.
CREATE TABLE IF NOT EXISTS account_roles (
    account_id INTEGER NOT NULL,
    role       TEXT NOT NULL,
    PRIMARY KEY (account_id, role)
) WITHOUT ROWID;

-- kind: the catalog (`products`, `dashboards`, `coverage`, …).
CREATE TABLE IF NOT EXISTS account_entitlements (
    account_id INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, value)
) WITHOUT ROWID;

INSERT OR IGNORE INTO account_roles (account_id, role)
    SELECT id, role FROM accounts WHERE role <> '';
UPDATE accounts SET role = '' WHERE role <> '';

-- The account that oversees this one (a staff member, a caseworker).
ALTER TABLE accounts ADD COLUMN case_manager_id INTEGER REFERENCES accounts (id);
CREATE INDEX IF NOT EXISTS accounts_case_manager ON accounts (case_manager_id);
