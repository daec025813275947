//! Verbs that read the store: `export`, `diff`, `log`.

use super::plan::{StoreArg, make, write_private};
use super::{Done, Error, Out, Outcome, print};
use crate::roster::emit::{self, EmitOptions};
use crate::store::{self, Options, audit};
use clap::ValueEnum;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Write to this file (mode 0600) instead of stdout.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Include birth dates, phones and extensions on stdout (a file always has them).
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
}

pub fn export(args: ExportArgs, out: &mut Out) -> Outcome {
    let store = args.store.open(out, Options::default().lock_timeout)?;
    let exported = crate::app::export::export(store.as_ref())?;
    for (other, account, email) in &exported.shared_emails {
        let _ = writeln!(
            out.stderr,
            "warning: accounts {other} and {account} share the email {email}; a roster holds one partner per email, so settle which one it is",
        );
    }
    let file = &exported.file;
    let header = "# yaml-language-server: $schema=https://roster.dev/schemas/roster.schema.json\n";
    match &args.out {
        Some(path) => {
            let text = format!(
                "{header}{}",
                emit::roster_file(file, &EmitOptions { show_pii: true })
            );
            write_private(path, text.as_bytes())
                .map_err(|e| Error::msg(format!("{}: cannot write: {e}", path.display())))?;
            Ok(Done::Ok)
        }
        None => {
            if !args.show_pii {
                let _ = writeln!(
                    out.stderr,
                    "note: birth dates, phones and extensions are left out; use -o FILE or --show-pii to include them"
                );
            }
            let text = format!(
                "{header}{}",
                emit::roster_file(
                    file,
                    &EmitOptions {
                        show_pii: args.show_pii
                    }
                )
            );
            print(out, &text)
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Roster files or directories (default: roster.yaml or roster/).
    pub rosters: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Show birth dates and phone numbers.
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
    /// Lines of context around each change.
    #[arg(long, default_value = "3")]
    pub context: usize,
}

pub fn diff(args: DiffArgs, out: &mut Out) -> Outcome {
    let store = args.store.open(out, Options::default().lock_timeout)?;
    let planned = make(store.as_ref(), &args.rosters, out, args.show_pii)?;
    let (have, want) = crate::app::export::diff(&planned, args.show_pii);
    let opts = EmitOptions { show_pii: true };
    let (a, b) = (
        emit::roster_file(&have, &opts),
        emit::roster_file(&want, &opts),
    );
    let text = similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(args.context)
        .header(
            &format!("store {}", store::display_url(store.url())),
            "roster",
        )
        .to_string();
    // The YAML emitter escapes controls already; this holds for the rest
    // (bidi controls, the store URL in the header).
    let text = crate::report::printable_text(&text).into_owned();
    let colored = if out.color {
        use anstyle::AnsiColor::{Cyan, Green, Red};
        text.lines()
            .map(|l| {
                let style = match l.as_bytes().first() {
                    Some(b'+') if !l.starts_with("+++") => Green.on_default(),
                    Some(b'-') if !l.starts_with("---") => Red.on_default(),
                    Some(b'@') => Cyan.on_default(),
                    _ => anstyle::Style::new(),
                };
                format!("{style}{l}{style:#}\n")
            })
            .collect()
    } else {
        text
    };
    let _ = out.stdout.write_all(colored.as_bytes());
    Ok(Done::Ok)
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Only rows from this time on: a date (2026-11-01), an RFC 3339 time, or an age (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Check the hash chain of the whole log; exit 1 if it is broken.
    #[arg(long)]
    pub verify: bool,
    #[arg(
        long,
        value_enum,
        default_value = "human",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
}

/// A moment given as a date, a time or an age before now, as RFC 3339 UTC.
pub fn parse_since(s: &str, now: jiff::Timestamp) -> Result<String, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.to_string());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().to_string())
            .map_err(|e| e.to_string());
    }
    if let Ok(span) = s.parse::<jiff::Span>() {
        let secs = span
            .total((jiff::Unit::Second, jiff::civil::date(2000, 1, 1)))
            .map_err(|e| e.to_string())?;
        return jiff::Timestamp::from_second(now.as_second() - secs as i64)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{s}` is not a date (2026-11-01), an RFC 3339 time (2026-11-01T09:00:00Z) or an age (24h, 7d)"
    ))
}

pub fn log(args: LogArgs, out: &mut Out) -> Outcome {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, jiff::Timestamp::now()))
        .transpose()
        .map_err(|e| Error::msg(format!("--since: {e}")))?;
    let store = args.store.open(out, Options::default().lock_timeout)?;
    let mut reader = store.reader()?;
    if args.verify {
        let all = reader.audit(None)?;
        let revision = reader.revision()?;
        audit::verify(&all, revision).map_err(|b| {
            Error::msg(format!(
                "the audit log of {} is broken: {b}",
                store::display_url(store.url())
            ))
        })?;
        let _ = writeln!(
            out.stdout,
            "ok: the audit log of {} is intact ({}, revision {revision})",
            store::display_url(store.url()),
            crate::report::plural(all.len(), "row")
        );
        return Ok(Done::Ok);
    }
    let rows = reader.audit(since.as_deref())?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        Format::Human => {
            let mut s = String::new();
            for r in &rows {
                let change = |v: &Option<serde_json::Value>| {
                    v.as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into())
                };
                let row = format!(
                    "{:>6} r{:<6} {} {:<12} {:<20} {}  {} → {}",
                    r.seq,
                    r.revision,
                    r.at,
                    r.actor,
                    r.op,
                    r.subject,
                    change(&r.before),
                    change(&r.after)
                );
                s.push_str(&crate::report::printable(&row));
                s.push('\n');
            }
            if rows.is_empty() {
                s.push_str("The audit log has no rows");
                s.push_str(if since.is_some() {
                    " in that time.\n"
                } else {
                    ".\n"
                });
            }
            s
        }
    };
    print(out, &text)
}
