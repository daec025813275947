-- roster store, schema version 6: delivery of the outbox and activation
-- (SPEC §10).
--
-- accounts.token_issued_at: when the account's current one-time token
-- (invitation, reminder or password reset) was made; the token expires a
-- TTL after it. Only its digest is kept (activation_digest).
-- accounts.reset_requested_at: a password reset waits on this account's
-- token (the account stays as it is until the page is used).
ALTER TABLE accounts ADD COLUMN token_issued_at TEXT;
ALTER TABLE accounts ADD COLUMN reset_requested_at TEXT;
UPDATE accounts SET token_issued_at = COALESCE(reminded_at, invited_at)
    WHERE activation_digest IS NOT NULL;

-- outbox.kind: 'invitation', 'reminder' or 'reset'.
-- attempts: deliveries tried; next_try_at: not before (a temporary failure
-- waits); failed_at/error: the relay refused it for good (5xx), kept to be
-- listed; claimed_until: a `send` run holds the message until then, so two
-- runs at once never send it twice and a crashed run's claim runs out.
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_try_at TEXT;
ALTER TABLE outbox ADD COLUMN failed_at TEXT;
ALTER TABLE outbox ADD COLUMN error TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, failed_at, next_try_at);

-- The activation page finds an account by its token's digest.
CREATE INDEX IF NOT EXISTS accounts_activation_digest ON accounts (activation_digest);
