//! Verbs that read the store: `export`, `diff`, `log`, `invitations`.

use super::Out;
use super::plan::{StoreArg, store_error, write_private};
use crate::domain::{self, Account, Membership};
use crate::plan::Outcome;
use crate::plan::compute::profile_of;
use crate::roster::emit::{self, EmitOptions};
use crate::roster::model::{self, Member, MemberEntry, Partner, RosterFile};
use crate::store::{self, audit};
use clap::ValueEnum;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The store (or part of it) as a roster file: every account pinned,
/// inactive ones `active: false`, groups and members sorted.
pub fn roster_of(
    accounts: &[Account],
    groups: &[domain::Group],
    memberships: &[Membership],
) -> RosterFile {
    let email_of: HashMap<String, &str> = accounts
        .iter()
        .map(|a| (a.user_name.to_lowercase(), a.profile.email.as_str()))
        .collect();
    let mut members: HashMap<&str, BTreeMap<String, bool>> = HashMap::new();
    for m in memberships {
        if let Some(e) = email_of.get(&m.user_name.to_lowercase()) {
            members
                .entry(m.group.as_str())
                .or_default()
                .insert(e.to_lowercase(), m.user_manager);
        }
    }
    let mut groups: Vec<model::Group> = groups
        .iter()
        .map(|g| model::Group {
            name: g.name.clone(),
            kind: g.kind,
            lwia: g.lwia,
            members: members
                .get(g.name.as_str())
                .map(|m| {
                    m.iter()
                        .map(|(email, um)| {
                            if *um {
                                Member::Entry(MemberEntry {
                                    email: email.clone(),
                                    user_manager: true,
                                })
                            } else {
                                Member::Email(email.clone())
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let mut partners: Vec<Partner> = accounts
        .iter()
        .map(|a| Partner {
            email: a.profile.email.to_lowercase(),
            first_name: a.profile.first_name.clone(),
            last_name: a.profile.last_name.clone(),
            birth_date: a.profile.birth_date.clone(),
            phone: a.profile.phone.clone(),
            extension: a.profile.extension.clone(),
            zip: a.profile.zip.clone(),
            role: a.profile.role,
            account: Some(a.user_name.clone()),
            active: a.active,
        })
        .collect();
    partners.sort_by(|a, b| (&a.email, &a.account).cmp(&(&b.email, &b.account)));
    RosterFile {
        version: 1,
        groups,
        partners,
        policy: None,
    }
}

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

pub fn export(args: ExportArgs, out: &mut Out) -> u8 {
    let dump = store::open_reader(&args.store.url).and_then(|mut r| {
        let accounts = r.all_accounts()?;
        let groups = r.groups(None)?;
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let memberships = r.memberships(&names)?;
        Ok(roster_of(&accounts, &groups, &memberships))
    });
    let file = match dump {
        Ok(f) => f,
        Err(e) => return store_error(out, &e),
    };
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in &file.partners {
        let account = p.account.as_deref().unwrap_or_default();
        if let Some(other) = seen.insert(p.email.as_str(), account) {
            let _ = writeln!(
                out.stderr,
                "warning: accounts {other} and {account} share the email {}; a roster holds one partner per email, so settle which one it is",
                p.email
            );
        }
    }
    let header = "# yaml-language-server: $schema=https://roster.dev/schemas/roster.schema.json\n";
    match &args.out {
        Some(path) => {
            let text = format!(
                "{header}{}",
                emit::roster_file(&file, &EmitOptions { show_pii: true })
            );
            if let Err(e) = write_private(path, text.as_bytes()) {
                let _ = writeln!(out.stderr, "error: {}: cannot write: {e}", path.display());
                return 1;
            }
            0
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
                    &file,
                    &EmitOptions {
                        show_pii: args.show_pii
                    }
                )
            );
            u8::from(out.stdout.write_all(text.as_bytes()).is_err())
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

/// Replace personal data by a marker that still shows whether it changed.
fn mask(live: &mut [Partner], want: &mut [Partner]) {
    let by_email: HashMap<String, usize> = want
        .iter()
        .enumerate()
        .map(|(i, p)| (p.email.clone(), i))
        .collect();
    let hide = |a: &mut Option<String>, b: Option<&mut Option<String>>| match b {
        Some(b) => {
            let same = *a == *b;
            if a.is_some() {
                *a = Some(if same { "(hidden)" } else { "(hidden: store)" }.into());
            }
            if b.is_some() {
                *b = Some(if same { "(hidden)" } else { "(hidden: roster)" }.into());
            }
        }
        None => {
            if a.is_some() {
                *a = Some("(hidden)".into());
            }
        }
    };
    let mut done = vec![false; want.len()];
    for p in live.iter_mut() {
        let other = by_email.get(&p.email).copied();
        if let Some(i) = other {
            done[i] = true;
        }
        let w = other.map(|i| &mut want[i]);
        match w {
            Some(w) => {
                hide(&mut p.birth_date, Some(&mut w.birth_date));
                hide(&mut p.phone, Some(&mut w.phone));
                hide(&mut p.extension, Some(&mut w.extension));
            }
            None => {
                hide(&mut p.birth_date, None);
                hide(&mut p.phone, None);
                hide(&mut p.extension, None);
            }
        }
    }
    for (p, _) in want.iter_mut().zip(done).filter(|(_, d)| !d) {
        hide(&mut p.birth_date, None);
        hide(&mut p.phone, None);
        hide(&mut p.extension, None);
    }
}

pub fn diff(args: DiffArgs, out: &mut Out) -> u8 {
    let (plan, checked, live) =
        match super::plan::make_with_live(&args.rosters, &args.store.url, out, args.show_pii) {
            Ok(p) => p,
            Err(c) => return c,
        };
    let account_of: HashMap<&str, &str> = plan
        .resolutions
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Matched | Outcome::Reactivate | Outcome::Create
            )
        })
        .filter_map(|r| r.account.as_deref().map(|a| (r.partner.as_str(), a)))
        .collect();
    // Desired: the roster, normalized the way the store keeps it, with the
    // accounts the plan resolved.
    let mut want = RosterFile {
        version: 1,
        groups: checked
            .roster
            .groups
            .iter()
            .map(|g| g.item.clone())
            .collect(),
        partners: checked
            .roster
            .partners
            .iter()
            .map(|e| {
                let p = &e.item;
                let prof = profile_of(p);
                Partner {
                    email: prof.email.clone(),
                    first_name: prof.first_name,
                    last_name: prof.last_name,
                    birth_date: prof.birth_date,
                    phone: prof.phone,
                    extension: prof.extension,
                    zip: prof.zip,
                    role: prof.role,
                    account: account_of.get(prof.email.as_str()).map(|a| a.to_string()),
                    active: p.active,
                }
            })
            .collect(),
        policy: None,
    };
    for g in &mut want.groups {
        let mut m: BTreeMap<String, bool> = BTreeMap::new();
        for x in &g.members {
            m.insert(crate::roster::normalize::email(x.email()), x.user_manager());
        }
        g.members = m
            .into_iter()
            .map(|(email, um)| {
                if um {
                    Member::Entry(MemberEntry {
                        email,
                        user_manager: true,
                    })
                } else {
                    Member::Email(email)
                }
            })
            .collect();
    }
    want.groups.sort_by(|a, b| a.name.cmp(&b.name));
    want.partners
        .sort_by(|a, b| (&a.email, &a.account).cmp(&(&b.email, &b.account)));
    // Live: the groups the roster manages and the accounts it touches.
    let managed: std::collections::HashSet<&str> =
        want.groups.iter().map(|g| g.name.as_str()).collect();
    let groups: Vec<domain::Group> = live
        .groups
        .iter()
        .filter(|g| managed.contains(g.name.as_str()))
        .cloned()
        .collect();
    let memberships: Vec<Membership> = live
        .memberships
        .iter()
        .filter(|m| managed.contains(m.group.as_str()))
        .cloned()
        .collect();
    let touched: std::collections::HashSet<String> = memberships
        .iter()
        .map(|m| m.user_name.to_lowercase())
        .chain(account_of.values().map(|a| a.to_lowercase()))
        .collect();
    let accounts: Vec<Account> = live
        .accounts
        .iter()
        .filter(|a| touched.contains(&a.user_name.to_lowercase()))
        .cloned()
        .collect();
    let mut have = roster_of(&accounts, &groups, &memberships);
    if !args.show_pii {
        mask(&mut have.partners, &mut want.partners);
    }
    let opts = EmitOptions { show_pii: true };
    let (a, b) = (
        emit::roster_file(&have, &opts),
        emit::roster_file(&want, &opts),
    );
    let text = similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(args.context)
        .header(
            &format!("store {}", store::display_url(&args.store.url)),
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
    0
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

pub fn log(args: LogArgs, out: &mut Out) -> u8 {
    let since = match args
        .since
        .as_deref()
        .map(|s| parse_since(s, jiff::Timestamp::now()))
    {
        Some(Err(e)) => {
            let _ = writeln!(out.stderr, "error: --since: {e}");
            return 1;
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let mut reader = match store::open_reader(&args.store.url) {
        Ok(r) => r,
        Err(e) => return store_error(out, &e),
    };
    if args.verify {
        let checked = reader
            .audit(None)
            .and_then(|all| Ok((all, reader.revision()?)));
        return match checked {
            Err(e) => store_error(out, &e),
            Ok((all, revision)) => match audit::verify(&all, revision) {
                Ok(()) => {
                    let _ = writeln!(
                        out.stdout,
                        "ok: the audit log of {} is intact ({}, revision {revision})",
                        store::display_url(&args.store.url),
                        crate::report::plural(all.len(), "row")
                    );
                    0
                }
                Err(b) => {
                    let _ = writeln!(
                        out.stderr,
                        "error: the audit log of {} is broken: {b}",
                        store::display_url(&args.store.url)
                    );
                    1
                }
            },
        };
    }
    let rows = match reader.audit(since.as_deref()) {
        Ok(r) => r,
        Err(e) => return store_error(out, &e),
    };
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
    u8::from(out.stdout.write_all(text.as_bytes()).is_err())
}

#[derive(clap::Args, Debug)]
pub struct InvitationsArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Invitations older than this are due a reminder (e.g. 24h, 3d).
    #[arg(long, default_value = "24h")]
    pub older_than: String,
    #[arg(
        long,
        value_enum,
        default_value = "human",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
}

pub fn invitations(args: InvitationsArgs, out: &mut Out) -> u8 {
    let cutoff = match parse_since(&args.older_than, jiff::Timestamp::now()) {
        Ok(c) if args.older_than.parse::<jiff::Span>().is_ok() => c,
        _ => {
            let _ = writeln!(
                out.stderr,
                "error: --older-than: `{}` is not an age such as 24h or 3d",
                args.older_than
            );
            return 1;
        }
    };
    let list = match store::open_reader(&args.store.url).and_then(|mut r| r.invitations()) {
        Ok(l) => l,
        Err(e) => return store_error(out, &e),
    };
    let due = |i: &store::Invitation| {
        let last = i.reminded_at.as_deref().unwrap_or(&i.invited_at);
        match (
            last.parse::<jiff::Timestamp>(),
            cutoff.parse::<jiff::Timestamp>(),
        ) {
            (Ok(a), Ok(b)) => a <= b,
            _ => false,
        }
    };
    let text = match args.format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "account": i.user_name, "email": i.email, "invited_at": i.invited_at,
                        "reminded_at": i.reminded_at, "reminder_due": due(i),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
        }
        Format::Human => {
            let mut s = String::new();
            let n_due = list.iter().filter(|i| due(i)).count();
            for i in &list {
                let row = format!(
                    "{:<20} {:<32} invited {}{}",
                    i.user_name,
                    i.email,
                    i.invited_at,
                    if due(i) { "  reminder due" } else { "" }
                );
                s.push_str(&crate::report::printable(&row));
                s.push('\n');
            }
            s.push_str(&format!(
                "{} pending, {n_due} due a reminder (older than {}).\n",
                crate::report::plural(list.len(), "invitation"),
                args.older_than
            ));
            s
        }
    };
    u8::from(out.stdout.write_all(text.as_bytes()).is_err())
}
