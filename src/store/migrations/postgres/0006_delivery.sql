-- roster store on PostgreSQL: the twin of ../0006_delivery.sql, delivery of
-- the outbox and activation (SPEC §10).
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS token_issued_at TEXT;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS reset_requested_at TEXT;
UPDATE accounts SET token_issued_at = COALESCE(reminded_at, invited_at)
    WHERE activation_digest IS NOT NULL;

ALTER TABLE outbox ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS next_try_at TEXT;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at TEXT;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS error TEXT;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_until TEXT;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, failed_at, next_try_at);

-- The activation page finds an account by its token's digest.
CREATE INDEX IF NOT EXISTS accounts_activation_digest ON accounts (activation_digest);
