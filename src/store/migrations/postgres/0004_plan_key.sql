-- roster store on PostgreSQL: the twin of ../0004_plan_key.sql, the key
-- that seals saved plans (SPEC §11), made the first time `roster plan -o`
-- needs it.
CREATE TABLE IF NOT EXISTS plan_keys (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    key        BYTEA NOT NULL,
    created_at TEXT NOT NULL
);
