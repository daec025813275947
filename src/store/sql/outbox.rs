//! The outbox's delivery (SPEC §10), written once for SQLite and
//! PostgreSQL: claiming due messages, marking them sent or failed, and
//! queuing reminders and password resets with fresh tokens. Each runs in a
//! write session ([`super::session::SqlSession`]), under the store's write
//! lock, so two `send` runs never claim the same message.

use super::conn::{Conn, Dialect, params};
use crate::store::{Mail, MailKind, MailState, StoreError};

/// Whether the message `o` of account `a` may still go: nobody
/// deactivated gets mail, and an invitation or reminder goes only to an
/// account still waiting to activate.
const WANTED: &str = "(a.active AND (o.kind = 'reset' OR (a.credential = 'invited' \
     AND a.activated_at IS NULL)))";

/// Claim up to `limit` due messages until `until` (see
/// [`crate::store::Session::claim_mail`]); due messages nobody may get
/// any more are dropped on the way.
pub fn claim(
    c: &mut dyn Conn,
    now: &str,
    until: &str,
    limit: usize,
) -> Result<Vec<Mail>, StoreError> {
    // PostgreSQL: rows another claim holds are skipped, not waited for.
    let lock = match c.dialect() {
        Dialect::Postgres => " FOR UPDATE OF o SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "SELECT o.id, o.kind, a.user_name, o.recipient, a.first_name, a.last_name, o.token, \
         o.attempts, {WANTED} FROM outbox o JOIN accounts a ON a.id = o.account_id \
         WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.token IS NOT NULL \
         AND (o.next_try_at IS NULL OR o.next_try_at <= ?1) \
         AND (o.claimed_until IS NULL OR o.claimed_until <= ?1) \
         ORDER BY o.id LIMIT ?2{lock}"
    );
    loop {
        let rows = c.query(&sql, &params![now, limit])?;
        let mut out = Vec::with_capacity(rows.len());
        let mut unwanted = Vec::new();
        for r in &rows {
            if !r.get::<bool>(8)? {
                unwanted.push(r.get::<i64>(0)?);
                continue;
            }
            out.push(Mail {
                id: r.get(0)?,
                kind: MailKind::parse(&r.get::<String>(1)?),
                user_name: r.get(2)?,
                recipient: r.get(3)?,
                first_name: r.get(4)?,
                last_name: r.get(5)?,
                token: r.get(6)?,
                attempts: r.get(7)?,
            });
        }
        if !unwanted.is_empty() {
            c.execute(
                &format!("DELETE FROM outbox WHERE {}", c.in_list("id", 1)),
                &params![unwanted],
            )?;
        }
        let ids: Vec<i64> = out.iter().map(|m| m.id).collect();
        if !ids.is_empty() {
            c.execute(
                &format!(
                    "UPDATE outbox SET claimed_until = ?1 WHERE {}",
                    c.in_list("id", 2)
                ),
                &params![until, ids],
            )?;
        }
        // A batch of only unwanted messages: look further.
        if out.is_empty() && rows.len() == limit && limit > 0 {
            continue;
        }
        return Ok(out);
    }
}

/// Accepted by the relay: sent, the raw token erased.
pub fn sent(c: &mut dyn Conn, now: &str, id: i64) -> Result<(), StoreError> {
    c.execute(
        "UPDATE outbox SET sent_at = ?2, token = NULL, claimed_until = NULL, error = NULL, \
         attempts = attempts + 1 WHERE id = ?1",
        &params![id, now],
    )?;
    Ok(())
}

/// A temporary failure: tried again from `next_try_at`.
pub fn deferred(c: &mut dyn Conn, id: i64, next: &str, error: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_try_at = ?2, error = ?3, \
         claimed_until = NULL WHERE id = ?1 AND sent_at IS NULL",
        &params![id, next, error],
    )?;
    Ok(())
}

/// A permanent failure: kept to be listed; the token is of no more use.
pub fn failed(c: &mut dyn Conn, now: &str, id: i64, error: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, failed_at = ?2, error = ?3, token = NULL, \
         claimed_until = NULL WHERE id = ?1 AND sent_at IS NULL",
        &params![id, now, error],
    )?;
    Ok(())
}

/// Claims given up.
pub fn release(c: &mut dyn Conn, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    c.execute(
        &format!(
            "UPDATE outbox SET claimed_until = NULL WHERE sent_at IS NULL AND {}",
            c.in_list("id", 1)
        ),
        &params![ids.to_vec()],
    )?;
    Ok(())
}

/// Invited accounts due a reminder (see
/// [`crate::store::Session::due_reminders`]).
pub fn due_reminders(
    c: &mut dyn Conn,
    sent_before: &str,
    max: u32,
) -> Result<Vec<String>, StoreError> {
    c.query(
        "SELECT a.user_name FROM accounts a \
         WHERE a.active AND a.credential = 'invited' AND a.activation_digest IS NOT NULL \
         AND a.activated_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.account_id = a.id AND o.sent_at IS NULL) \
         AND (SELECT max(o.sent_at) FROM outbox o WHERE o.account_id = a.id) <= ?1 \
         AND (SELECT count(*) FROM outbox o WHERE o.account_id = a.id AND o.kind = 'reminder') < ?2 \
         ORDER BY a.user_key",
        &params![sent_before, i64::from(max)],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Give the account `id` a fresh token and queue `kind` with it; `Err`
/// names why the account cannot have this mail.
pub fn queue(
    c: &mut dyn Conn,
    now: &str,
    user_name: &str,
    id: i64,
    kind: MailKind,
    token: &str,
    digest: &str,
) -> Result<(), StoreError> {
    let row = c.query_one(
        "SELECT active, credential, activated_at, email FROM accounts WHERE id = ?1",
        &params![id],
    )?;
    let active: bool = row.get(0)?;
    let credential: String = row.get(1)?;
    let activated: Option<String> = row.get(2)?;
    let email: String = row.get(3)?;
    kind.check(
        user_name,
        active,
        credential == "invited" && activated.is_none(),
    )?;
    let stamp = match kind {
        MailKind::Reset => "reset_requested_at",
        _ => "reminded_at",
    };
    c.execute(
        &format!(
            "UPDATE accounts SET activation_digest = ?2, token_issued_at = ?3, {stamp} = ?3 \
             WHERE id = ?1"
        ),
        &params![id, digest, now],
    )?;
    // A message still queued carries the old token, which no longer works.
    c.execute(
        "DELETE FROM outbox WHERE account_id = ?1 AND sent_at IS NULL AND failed_at IS NULL",
        &params![id],
    )?;
    c.execute(
        "INSERT INTO outbox (kind, account_id, recipient, token, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &params![kind.as_str(), id, email, token, now],
    )?;
    Ok(())
}

/// Every active account with a pending invitation or any mail.
pub fn states(c: &mut dyn Conn) -> Result<Vec<MailState>, StoreError> {
    c.query(
        "SELECT a.user_name, a.email, a.invited_at, a.token_issued_at, a.reminded_at, \
         a.activated_at, \
         (a.credential = 'invited' AND a.activation_digest IS NOT NULL AND a.activated_at IS NULL), \
         o.kind, o.sent_at, o.failed_at, o.error, o.attempts, \
         (SELECT count(*) FROM outbox r WHERE r.account_id = a.id AND r.kind = 'reminder' \
          AND r.sent_at IS NOT NULL) \
         FROM accounts a \
         LEFT JOIN outbox o ON o.id = (SELECT max(x.id) FROM outbox x WHERE x.account_id = a.id) \
         WHERE a.active AND (o.id IS NOT NULL OR (a.credential = 'invited' \
         AND a.activation_digest IS NOT NULL AND a.activated_at IS NULL)) \
         ORDER BY a.invited_at, a.user_key",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(MailState {
            user_name: r.get(0)?,
            email: r.get(1)?,
            invited_at: r.get(2)?,
            token_issued_at: r.get(3)?,
            reminded_at: r.get(4)?,
            activated_at: r.get(5)?,
            pending: r.get(6)?,
            kind: r.get::<Option<String>>(7)?.map(|k| MailKind::parse(&k)),
            sent_at: r.get(8)?,
            failed_at: r.get(9)?,
            error: r.get(10)?,
            attempts: r.get::<Option<i64>>(11)?.unwrap_or(0),
            reminders: r.get(12)?,
        })
    })
    .collect()
}
