-- roster store: the key that seals saved plans (SPEC §11). One random key
-- per store, made the first time `roster plan -o` needs it; whoever can open
-- the store can seal and check plans, nobody else can.
CREATE TABLE IF NOT EXISTS plan_keys (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    key        BLOB NOT NULL,
    created_at TEXT NOT NULL
);
