//! `roster invitations` (each invitation's and reset's state),
//! `roster invitations send` (delivery over SMTP) and
//! `roster reset-password ACCOUNT…`.

use super::apply::actor;
use super::plan::{StoreArg, write_private};
use super::store::{Format, parse_since};
use super::{Done, Error, Out, Outcome, print};
use crate::app::invitations::{self as app, SendOptions};
use crate::mail::smtp::{PASSWORD_VAR, Relay};
use crate::mail::templates::Templates;
use crate::store::{self, Options};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InvitationsArgs {
    #[command(subcommand)]
    pub command: Option<Sub>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Deliver the queued invitations, reminders and password resets over SMTP.
    Send(SendArgs),
}

/// `--invite-ttl`: how long a one-time link works (its invitation is
/// `expired` after it), for every verb that tells invitation states.
#[derive(clap::Args, Debug)]
pub struct InviteTtl {
    /// How long an invitation's link works (e.g. 14d, 36h): expired after it.
    #[arg(
        long = "invite-ttl",
        default_value = "14d",
        env = "ROSTER_INVITE_TTL",
        hide_env_values = true
    )]
    pub text: String,
}

impl InviteTtl {
    pub fn get(&self) -> Result<Duration, Error> {
        duration("--invite-ttl", &self.text)
    }
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Invitations older than this are due a reminder (e.g. 24h, 3d).
    #[arg(long, default_value = "24h")]
    pub older_than: String,
    #[command(flatten)]
    pub invite_ttl: super::invitations::InviteTtl,
    #[arg(
        long,
        value_enum,
        default_value = "human",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// The relay: smtp://[USER@]HOST:PORT (STARTTLS when offered) or
    /// smtps://[USER@]HOST:PORT (TLS); the password comes from ROSTER_SMTP_PASSWORD only.
    #[arg(
        long,
        env = "ROSTER_SMTP",
        hide_env_values = true,
        required_unless_present = "dry_run"
    )]
    pub smtp: Option<String>,
    /// The sender address (`Name <addr@example.org>` or `addr@example.org`).
    #[arg(long, env = "ROSTER_MAIL_FROM", hide_env_values = true)]
    pub from: String,
    /// The activation page's address, with {token} where the token goes.
    #[arg(long, env = "ROSTER_ACTIVATE_LINK", hide_env_values = true)]
    pub link: String,
    /// A folder of templates and settings.yaml over the shipped ones.
    #[arg(long, env = "ROSTER_MAIL_TEMPLATES", hide_env_values = true)]
    pub templates: Option<PathBuf>,
    /// Remind invited accounts this long after their last mail (0: never).
    #[arg(long, default_value = "24h")]
    pub remind_after: String,
    /// The most reminders an account gets.
    #[arg(long, default_value = "3")]
    pub max_reminders: u32,
    /// Render the mails without sending them or changing the store: to
    /// stdout, or one file per mail into --out.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: the folder the mails are written to (files 0600).
    #[arg(long, requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// A PEM certificate to trust for the relay's TLS, beside the system's.
    #[arg(long, env = "ROSTER_SMTP_CA", hide_env_values = true)]
    pub smtp_ca: Option<PathBuf>,
    /// How long the relay may take to answer.
    #[arg(long, default_value = "30s")]
    pub smtp_timeout: String,
    /// How long a run holds the messages it claimed: a crashed run's
    /// unsent messages are due again after it.
    #[arg(long, default_value = "5m")]
    pub lease: String,
    #[command(flatten)]
    pub invite_ttl: super::invitations::InviteTtl,
    /// Who queues reminders, for the audit log (default: the user running roster).
    #[arg(long, env = "ROSTER_ACTOR", hide_env_values = true)]
    pub actor: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// The accounts (user names) to send a password-reset link to.
    #[arg(required = true)]
    pub accounts: Vec<String>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Who asks, for the audit log (default: the user running roster).
    #[arg(long, env = "ROSTER_ACTOR", hide_env_values = true)]
    pub actor: Option<String>,
}

/// An age such as `24h`, `3d` or `90s`.
pub(super) fn duration(flag: &str, s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::msg(format!(
            "{flag}: `{s}` is not an age such as 30s, 24h or 3d"
        ))
    };
    let span: jiff::Span = s.trim().parse().map_err(|_| bad())?;
    let secs = span
        .total((jiff::Unit::Second, jiff::civil::date(2000, 1, 1)))
        .map_err(|_| bad())?;
    if !(0.0..=1e10).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs as u64))
}

pub fn run(args: InvitationsArgs, out: &mut Out) -> Outcome {
    match args.command {
        Some(Sub::Send(a)) => send(a, out),
        None => list(args.list, out),
    }
}

fn list(args: ListArgs, out: &mut Out) -> Outcome {
    let now = jiff::Timestamp::now();
    let cutoff = match parse_since(&args.older_than, now) {
        Ok(c) if args.older_than.parse::<jiff::Span>().is_ok() => c,
        _ => {
            return Err(Error::msg(format!(
                "--older-than: `{}` is not an age such as 24h or 3d",
                args.older_than
            )));
        }
    };
    let ttl = args.invite_ttl.get()?;
    let store = args.store.open(out, Options::default().lock_timeout)?;
    let list = store.reader()?.mail_states()?;
    let due = |i: &store::MailState| {
        let last = i
            .reminded_at
            .as_deref()
            .or(i.invited_at.as_deref())
            .unwrap_or_default();
        i.pending && !last.is_empty() && last <= cutoff.as_str()
    };
    let text = match args.format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "account": i.user_name, "email": i.email, "invited_at": i.invited_at,
                        "reminded_at": i.reminded_at, "reminder_due": due(i),
                        "state": app::state(i, now, ttl), "kind": i.kind,
                        "sent_at": i.sent_at, "failed_at": i.failed_at, "error": i.error,
                        "attempts": i.attempts, "reminders": i.reminders,
                        "activated_at": i.activated_at,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
        }
        Format::Human => {
            let mut s = String::new();
            let pending = list.iter().filter(|i| i.pending).count();
            let n_due = list.iter().filter(|i| due(i)).count();
            for i in &list {
                let kind = i.kind.map_or("invitation", |k| k.as_str());
                let mut row = format!(
                    "{:<20} {:<32} {:<10} {:<10} invited {}",
                    i.user_name,
                    i.email,
                    kind,
                    app::state(i, now, ttl),
                    i.invited_at.as_deref().unwrap_or("-"),
                );
                if due(i) {
                    row.push_str("  reminder due");
                }
                if let (Some(_), Some(e)) = (&i.failed_at, &i.error) {
                    row.push_str(&format!("  ({e})"));
                }
                s.push_str(&crate::report::printable(&row));
                s.push('\n');
            }
            s.push_str(&format!(
                "{} pending, {n_due} due a reminder (older than {}).\n",
                crate::report::plural(pending, "invitation"),
                args.older_than
            ));
            s
        }
    };
    print(out, &text)
}

fn send(args: SendArgs, out: &mut Out) -> Outcome {
    if !args.link.contains("{token}") {
        return Err(Error::msg(format!(
            "--link `{}` has no {{token}}: give the activation page's address, e.g. 'https://portal.example/activate?token={{token}}'",
            args.link
        )));
    }
    if !(args.link.starts_with("https://") || args.link.starts_with("http://")) {
        return Err(Error::msg(format!(
            "--link `{}`: an http:// or https:// address",
            args.link
        )));
    }
    let remind_after = duration("--remind-after", &args.remind_after)?;
    let opts = SendOptions {
        link: args.link.clone(),
        remind_after: (!remind_after.is_zero() && args.max_reminders > 0).then_some(remind_after),
        max_reminders: args.max_reminders,
        lease: duration("--lease", &args.lease)?.max(Duration::from_secs(1)),
        ttl: args.invite_ttl.get()?,
        actor: actor(args.actor.clone()),
    };
    let templates = Templates::load(args.templates.as_deref()).map_err(Error::Text)?;
    let store = args.store.open(out, Options::default().lock_timeout)?;
    if args.dry_run {
        return dry_run(&args, &opts, &templates, store.as_ref(), out);
    }
    let password = std::env::var(PASSWORD_VAR).ok().filter(|p| !p.is_empty());
    let url = args.smtp.clone().unwrap_or_default();
    let relay = Relay::new(
        &url,
        &args.from,
        password,
        args.smtp_ca.as_deref(),
        duration("--smtp-timeout", &args.smtp_timeout)?.max(Duration::from_secs(1)),
    )
    .map_err(Error::msg)?;
    let report = app::send(store.as_ref(), &templates, &relay, &opts).map_err(|e| match e {
        app::SendError::Store(e) => Error::Store(e),
        app::SendError::Template(t) => Error::Text(t),
    })?;
    let mut s = format!(
        "Sent {} through {url}",
        crate::report::plural(report.sent, "message")
    );
    if report.reminders_queued > 0 {
        s.push_str(&format!(
            " ({} queued)",
            crate::report::plural(report.reminders_queued, "reminder")
        ));
    }
    s.push_str(&format!(
        "; {} deferred, {} failed.\n",
        report.deferred.len(),
        report.failed.len()
    ));
    for (to, why) in &report.deferred {
        s.push_str(&crate::report::printable(&format!(
            "  deferred {to}: {why}"
        )));
        s.push('\n');
    }
    for (to, why) in &report.failed {
        s.push_str(&crate::report::printable(&format!("  failed {to}: {why}")));
        s.push('\n');
    }
    print(out, &s)?;
    if let Some(why) = report.unreachable {
        return Err(Error::msg(format!(
            "the relay {url} could not be reached ({why}); the messages stay queued for the next run"
        )));
    }
    if !report.failed.is_empty() {
        return Err(Error::msg(format!(
            "{} refused for good (listed above); `roster invitations` lists them",
            crate::report::plural(report.failed.len(), "message")
        )));
    }
    Ok(Done::Ok)
}

fn dry_run(
    args: &SendArgs,
    opts: &SendOptions,
    templates: &Templates,
    store: &dyn store::Store,
    out: &mut Out,
) -> Outcome {
    if let Some(dir) = &args.out {
        // The mails hold working links: a folder only its owner can read.
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .map_err(|e| Error::msg(format!("--out {}: {e}", dir.display())))?;
    }
    let mut text = String::new();
    let n = app::dry_run(store, templates, opts, &mut |m, r| {
        let mail = format!(
            "From: {}\nTo: {} {} <{}>\nSubject: {}\nX-Roster-Kind: {}\n\n{}\n--- HTML ---\n{}\n",
            args.from,
            m.first_name,
            m.last_name,
            m.recipient,
            r.subject,
            m.kind.as_str(),
            r.text,
            r.html
        );
        match &args.out {
            // The files hold the links' tokens: 0600.
            Some(dir) => {
                let path = dir.join(format!("{:06}-{}.eml.txt", m.id, m.kind.as_str()));
                write_private(&path, mail.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            None => {
                text.push_str(&mail);
                text.push_str("\n=====\n");
                Ok(())
            }
        }
    })
    .map_err(|e| match e {
        app::SendError::Store(e) => Error::Store(e),
        app::SendError::Template(t) => Error::Text(t),
    })?;
    text.push_str(&format!(
        "Dry run: {} rendered, nothing sent and the store unchanged.\n",
        crate::report::plural(n, "message")
    ));
    print(out, &text)
}

pub fn reset_password(args: ResetArgs, out: &mut Out) -> Outcome {
    let store = args.store.open(out, Options::default().lock_timeout)?;
    app::reset_passwords(store.as_ref(), &args.accounts, &actor(args.actor))?;
    print(
        out,
        &format!(
            "Queued {}; `roster invitations send` delivers {}.\n",
            crate::report::plural(args.accounts.len(), "password reset"),
            if args.accounts.len() == 1 {
                "it"
            } else {
                "them"
            }
        ),
    )
}
