//! One-time tokens (invitations, reminders, password resets), written
//! once for both databases: the look-up the activation page shows and the
//! activation itself uses.

use super::conn::{Conn, params};
use crate::store::{StoreError, TokenHolder, TokenLookup, TokenRefused};
use std::time::Duration;

/// The account holding the token with `digest`, by id, or why none.
pub fn lookup(
    conn: &mut dyn Conn,
    digest: &str,
    ttl: Duration,
    now: &str,
) -> Result<(Option<i64>, TokenLookup), StoreError> {
    let Some(row) = conn.query_opt(
        "SELECT id, user_name, first_name, email, active, \
         COALESCE(token_issued_at, reminded_at, invited_at), reset_requested_at \
         FROM accounts WHERE activation_digest = ?1",
        &params![digest],
    )?
    else {
        return Ok((None, Err(TokenRefused::Unknown)));
    };
    let issued: Option<String> = row.get(5)?;
    let holder = TokenHolder {
        user_name: row.get(1)?,
        first_name: row.get(2)?,
        email: row.get(3)?,
        reset: row.get::<Option<String>>(6)?.is_some(),
    };
    let found = holder.judge(row.get(4)?, issued.as_deref(), ttl, now);
    Ok((Some(row.get(0)?), found))
}

/// Use the token of account `id`: the password set, the token and the
/// account's unsent mail gone, the activation time kept or set to `now`.
/// `digest` is matched again so a token used meanwhile changes nothing.
pub fn activate(
    conn: &mut dyn Conn,
    id: i64,
    digest: &str,
    password_hash: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE accounts SET password_hash = ?3, credential = 'password_set', \
         activated_at = COALESCE(activated_at, ?4), activation_digest = NULL, \
         token_issued_at = NULL, reset_requested_at = NULL, updated_at = ?4 \
         WHERE id = ?1 AND activation_digest = ?2",
        &params![id, digest, password_hash, now],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    conn.execute(
        "DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL",
        &params![id],
    )?;
    Ok(true)
}

/// Give account `id` this password hash (set by an administrator): the
/// credential `password_set`, its one-time token and unsent mail gone.
/// Returns the credential it had.
pub fn set_password(
    conn: &mut dyn Conn,
    id: i64,
    password_hash: &str,
    now: &str,
) -> Result<String, StoreError> {
    let was: String = conn
        .query_one(
            "SELECT credential FROM accounts WHERE id = ?1",
            &params![id],
        )?
        .get(0)?;
    conn.execute(
        "UPDATE accounts SET password_hash = ?2, credential = 'password_set', \
         activation_digest = NULL, token_issued_at = NULL, reset_requested_at = NULL, \
         updated_at = ?3 WHERE id = ?1",
        &params![id, password_hash, now],
    )?;
    conn.execute(
        "DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL",
        &params![id],
    )?;
    Ok(was)
}
