//! Delivering the outbox (SPEC §10): reminders queued with fresh tokens,
//! messages claimed a few at a time under the store's write lock, each
//! sent and marked sent (its raw token erased) before the next; and the
//! state of every invitation and reset, for `roster invitations`.

use crate::mail::smtp::{Delivery, Relay};
use crate::mail::templates::{Person, Rendered, Templates};
use crate::secrets;
use crate::store::{self, Mail, MailKind, MailState, Store, StoreError};
use std::time::{Duration, Instant};

/// How many messages one claim takes.
const BATCH: usize = 16;

/// What a `send` run does besides delivering.
pub struct SendOptions {
    /// The activation link, with `{token}` where the token goes.
    pub link: String,
    /// Remind invited accounts this long after their last mail; `None`: no
    /// reminders.
    pub remind_after: Option<Duration>,
    pub max_reminders: u32,
    /// How long a run holds the messages it claimed.
    pub lease: Duration,
    /// How long a token works (for the mail's "expires in N days").
    pub ttl: Duration,
    pub actor: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct SendReport {
    pub sent: usize,
    pub reminders_queued: usize,
    /// Recipient and why, tried again by a later run.
    pub deferred: Vec<(String, String)>,
    /// Recipient and why, failed for good.
    pub failed: Vec<(String, String)>,
    /// The relay could not be reached: why (the rest stays queued).
    pub unreachable: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template that does not render (names its file and line).
    #[error("{0}")]
    Template(String),
}

/// A timestamp `secs` from now, as the store keeps times.
fn after(secs: u64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now.saturating_add(secs as i64))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The link of `token`.
pub fn link(template: &str, token: &str) -> String {
    template.replace("{token}", token)
}

fn days(d: Duration) -> i64 {
    (d.as_secs() / 86_400) as i64
}

/// Render `mail`.
fn render(t: &Templates, m: &Mail, opts: &SendOptions) -> Result<Rendered, SendError> {
    t.render(
        m.kind,
        &Person {
            user_name: &m.user_name,
            first_name: &m.first_name,
            last_name: &m.last_name,
            email: &m.recipient,
        },
        &link(&opts.link, &m.token),
        days(opts.ttl),
    )
    .map_err(SendError::Template)
}

/// Queue the reminders due now; how many.
fn queue_reminders(s: &mut dyn store::Session, opts: &SendOptions) -> Result<usize, StoreError> {
    let Some(every) = opts.remind_after else {
        return Ok(0);
    };
    let cutoff = after(0)
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t.as_second() - every.as_secs() as i64).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let due = s.due_reminders(&cutoff, opts.max_reminders)?;
    for user in &due {
        let token = secrets::token();
        let digest = secrets::sha256(token.as_bytes());
        s.queue_mail(user, MailKind::Reminder, &token, &digest)?;
    }
    Ok(due.len())
}

/// Render every message a run would send now, reminders included,
/// without sending or changing the store (the session is rolled back).
pub fn dry_run(
    store: &dyn Store,
    templates: &Templates,
    opts: &SendOptions,
    each: &mut dyn FnMut(&Mail, &Rendered) -> Result<(), String>,
) -> Result<usize, SendError> {
    let mut s = store.begin(&opts.actor, &store::now())?;
    queue_reminders(s.as_mut(), opts)?;
    let until = after(opts.lease.as_secs());
    let mut n = 0;
    loop {
        let batch = s.claim_mail(&until, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            let r = render(templates, m, opts)?;
            each(m, &r).map_err(SendError::Template)?;
            n += 1;
        }
    }
    drop(s);
    Ok(n)
}

/// Deliver what is due through `relay`.
pub fn send(
    store: &dyn Store,
    templates: &Templates,
    relay: &Relay,
    opts: &SendOptions,
) -> Result<SendReport, SendError> {
    let mut report = SendReport::default();
    if opts.remind_after.is_some() {
        let mut s = store.begin(&opts.actor, &store::now())?;
        report.reminders_queued = queue_reminders(s.as_mut(), opts)?;
        s.commit()?;
    }
    // The part of the lease a message must still have to be sent: time
    // for the relay to answer.
    let margin = (opts.lease / 2).min(Duration::from_secs(60));
    'run: loop {
        let claimed_at = Instant::now();
        let mut s = store.begin(&opts.actor, &store::now())?;
        let batch = s.claim_mail(&after(opts.lease.as_secs()), BATCH)?;
        s.commit()?;
        if batch.is_empty() {
            break;
        }
        for (i, m) in batch.iter().enumerate() {
            if claimed_at.elapsed() + margin > opts.lease {
                // The claim runs out: another run may take these now.
                release(store, opts, &batch[i..])?;
                continue 'run;
            }
            let rendered = match render(templates, m, opts) {
                Ok(r) => r,
                Err(e) => {
                    release(store, opts, &batch[i..])?;
                    return Err(e);
                }
            };
            let name = format!("{} {}", m.first_name, m.last_name);
            let delivery = match relay.message(name.trim(), &m.recipient, &rendered) {
                Ok(message) => relay.send(&message),
                Err(e) => Delivery::Permanent(e),
            };
            let mut s = store.begin(&opts.actor, &store::now())?;
            match &delivery {
                Delivery::Sent => {
                    s.mail_sent(m.id)?;
                    report.sent += 1;
                }
                Delivery::Temporary(e) | Delivery::Unreachable(e) => {
                    s.mail_deferred(m.id, &after(backoff(m.attempts + 1)), e)?;
                    report.deferred.push((m.recipient.clone(), e.clone()));
                }
                Delivery::Permanent(e) => {
                    s.mail_failed(m.id, e)?;
                    report.failed.push((m.recipient.clone(), e.clone()));
                }
            }
            if let Delivery::Unreachable(e) = &delivery {
                s.release_mail(&batch[i + 1..].iter().map(|m| m.id).collect::<Vec<_>>())?;
                s.commit()?;
                report.unreachable = Some(e.clone());
                break 'run;
            }
            s.commit()?;
        }
    }
    Ok(report)
}

/// Give the claims on `rest` up.
fn release(store: &dyn Store, opts: &SendOptions, rest: &[Mail]) -> Result<(), StoreError> {
    let mut s = store.begin(&opts.actor, &store::now())?;
    s.release_mail(&rest.iter().map(|m| m.id).collect::<Vec<_>>())?;
    s.commit().map(|_| ())
}

/// Seconds before the `attempts`-th retry: 5 minutes, doubling, at most 6 hours.
pub fn backoff(attempts: i64) -> u64 {
    let n = attempts.clamp(1, 8) as u32 - 1;
    (300u64 << n).min(6 * 3600)
}

/// Queue a password reset for each account (one transaction: all or none).
pub fn reset_passwords(
    store: &dyn Store,
    accounts: &[String],
    actor: &str,
) -> Result<(), StoreError> {
    let mut s = store.begin(actor, &store::now())?;
    for a in accounts {
        let token = secrets::token();
        let digest = secrets::sha256(token.as_bytes());
        s.queue_mail(a, MailKind::Reset, &token, &digest)?;
    }
    s.commit().map(|_| ())
}

/// The state of the invitation of the account `s` describes: as [`state`],
/// except that a password reset, mailed only once the account activated,
/// leaves its invitation activated.
pub fn invitation_state(s: &MailState, now: jiff::Timestamp, ttl: Duration) -> &'static str {
    if s.kind == Some(MailKind::Reset) && !s.pending && s.activated_at.is_some() {
        return "activated";
    }
    state(s, now, ttl)
}

/// An invitation's or reset's state.
pub fn state(s: &MailState, now: jiff::Timestamp, ttl: Duration) -> &'static str {
    let issued = s
        .token_issued_at
        .as_deref()
        .or(s.reminded_at.as_deref())
        .or(s.invited_at.as_deref())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let expired = issued.is_some_and(|t| t.as_second() + ttl.as_secs() as i64 <= now.as_second());
    let reset = s.kind == Some(MailKind::Reset);
    if !s.pending && !reset && s.activated_at.is_some() {
        return "activated";
    }
    if s.failed_at.is_some() {
        return "failed";
    }
    if (s.pending || reset) && expired {
        return "expired";
    }
    if s.kind.is_none() || s.sent_at.is_none() {
        return "queued";
    }
    if s.kind == Some(MailKind::Reminder) {
        return "reminded";
    }
    "sent"
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(14 * 86_400);

    fn at(t: &str) -> Option<String> {
        Some(t.to_string())
    }

    #[test]
    fn a_reset_leaves_the_invitation_activated() {
        let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let reset = MailState {
            invited_at: at("2026-01-01T00:00:00Z"),
            activated_at: at("2026-01-02T00:00:00Z"),
            token_issued_at: at("2026-05-31T00:00:00Z"),
            kind: Some(MailKind::Reset),
            sent_at: at("2026-05-31T00:00:00Z"),
            ..MailState::default()
        };
        assert_eq!(state(&reset, now, TTL), "sent");
        assert_eq!(invitation_state(&reset, now, TTL), "activated");
        // An invitation still pending reads as `state` says.
        let pending = MailState {
            invited_at: at("2026-05-31T00:00:00Z"),
            token_issued_at: at("2026-05-31T00:00:00Z"),
            pending: true,
            kind: Some(MailKind::Invitation),
            sent_at: at("2026-05-31T00:00:00Z"),
            ..MailState::default()
        };
        assert_eq!(invitation_state(&pending, now, TTL), "sent");
        let later: jiff::Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        assert_eq!(invitation_state(&pending, later, TTL), "expired");
    }
}
