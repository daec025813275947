-- roster store on PostgreSQL: the twin of ../0005_roles_entitlements.sql,
-- several roles an account, entitlements and case managers (SPEC §9).
CREATE TABLE IF NOT EXISTS account_roles (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    role       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, role)
);

CREATE TABLE IF NOT EXISTS account_entitlements (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    kind       TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, kind, value)
);

INSERT INTO account_roles (account_id, role)
    SELECT id, role FROM accounts WHERE role <> ''
    ON CONFLICT DO NOTHING;
UPDATE accounts SET role = '' WHERE role <> '';
ALTER TABLE accounts ALTER COLUMN role SET DEFAULT '';

ALTER TABLE accounts ADD COLUMN IF NOT EXISTS case_manager_id BIGINT REFERENCES accounts (id);
CREATE INDEX IF NOT EXISTS accounts_case_manager ON accounts (case_manager_id);
