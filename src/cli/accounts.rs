//! `roster accounts`: the store's accounts as a table, JSON or CSV.

use super::plan::StoreArg;
use super::{Error, Out, Outcome, print};
use crate::app::accounts::{self as app, AccountsError, Filter, Listed, SignIn, Status};
use crate::report::{plural, printable};
use crate::store::Options;
use clap::ValueEnum;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArg,
    /// Only accounts in this state: active, invited (never activated),
    /// activated (signed in or set a password) or deactivated.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only accounts that have a case manager.
    #[arg(long, conflicts_with = "unassigned")]
    pub assigned: bool,
    /// Only accounts without a case manager.
    #[arg(long)]
    pub unassigned: bool,
    /// Only members of this group.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Only accounts whose case manager is the account with this email.
    #[arg(long, value_name = "EMAIL")]
    pub case_manager: Option<String>,
    /// Output format.
    #[arg(
        long,
        value_enum,
        default_value = "table",
        env = "ROSTER_FORMAT",
        hide_env_values = true
    )]
    pub format: Format,
    /// Include birth dates, phones and extensions.
    #[arg(long, env = "ROSTER_SHOW_PII", hide_env_values = true)]
    pub show_pii: bool,
    #[command(flatten)]
    pub invite_ttl: super::invitations::InviteTtl,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum StatusArg {
    Active,
    Invited,
    Activated,
    Deactivated,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people (`human` is the same).
    #[value(alias = "human")]
    Table,
    /// An array of objects, one an account.
    Json,
    /// RFC 4180 CSV with a header row, safe to open in a spreadsheet.
    Csv,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let filter = Filter {
        status: args.status.map(|s| match s {
            StatusArg::Active => Status::Active,
            StatusArg::Invited => Status::Invited,
            StatusArg::Activated => Status::Activated,
            StatusArg::Deactivated => Status::Deactivated,
        }),
        assigned: match (args.assigned, args.unassigned) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        group: args.group.clone(),
        case_manager: args.case_manager.clone(),
    };
    let ttl = args.invite_ttl.get()?;
    let store = args.store.open(out, Options::default().lock_timeout)?;
    let listed = app::list(store.as_ref(), &filter, ttl).map_err(|e| match e {
        AccountsError::Store(e) => Error::Store(e),
        other => Error::msg(printable(&other.to_string())),
    })?;
    let text = match args.format {
        Format::Table => table(&listed, args.show_pii),
        Format::Json => {
            serde_json::to_string_pretty(&json(&listed, args.show_pii)).unwrap_or_default() + "\n"
        }
        Format::Csv => {
            csv(&listed, args.show_pii).map_err(|e| Error::msg(format!("cannot write CSV: {e}")))?
        }
    };
    print(out, &text)
}

fn status(l: &Listed) -> &'static str {
    if l.account.active {
        "active"
    } else {
        "deactivated"
    }
}

fn name(l: &Listed) -> String {
    format!(
        "{} {}",
        l.account.profile.first_name, l.account.profile.last_name
    )
}

fn entitlement(e: &crate::domain::Entitlement) -> String {
    // The form SCIM gives an entitlement's value (SPEC §9).
    format!("{}:{}", e.kind, e.value)
}

/// One account as a JSON object; field names are documented in the README.
fn json(listed: &[Listed], show_pii: bool) -> Value {
    let rows: Vec<Value> = listed
        .iter()
        .map(|l| {
            let a = &l.account;
            let mut row = json!({
                "user_name": a.user_name,
                "first_name": a.profile.first_name,
                "last_name": a.profile.last_name,
                "email": a.profile.email,
                "status": status(l),
                "sign_in": l.sign_in.as_str(),
                "invitation": l.invitation,
                "roles": a.roles,
                "groups": l.groups.iter().map(|g| json!({
                    "name": g.name, "user_manager": g.user_manager,
                })).collect::<Vec<_>>(),
                "case_manager": l.case_manager.as_ref().map(|c| json!({
                    "user_name": c.user_name, "email": c.email,
                })),
                "entitlements": a.entitlements.iter().map(|e| json!({
                    "kind": e.kind, "value": e.value,
                })).collect::<Vec<_>>(),
            });
            if let (Some(at), Some(o)) = (&l.activated_at, row.as_object_mut()) {
                o.insert("activated_at".into(), json!(at));
            }
            if show_pii && let Some(o) = row.as_object_mut() {
                o.insert("birth_date".into(), json!(a.profile.birth_date));
                o.insert("phone".into(), json!(a.profile.phone));
                o.insert("extension".into(), json!(a.profile.extension));
            }
            row
        })
        .collect();
    Value::Array(rows)
}

/// The columns of the table and the CSV: (header, cell of an account).
type Column = (&'static str, fn(&Listed) -> String);

/// `activated`: some account has an activation time, shown after its
/// sign-in; `invitation`: some account has an invitation, its state shown
/// after that.
fn columns(show_pii: bool, csv: bool, activated: bool, invitation: bool) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![("user_name", |l| l.account.user_name.clone())];
    if csv {
        cols.push(("first_name", |l| l.account.profile.first_name.clone()));
        cols.push(("last_name", |l| l.account.profile.last_name.clone()));
    } else {
        cols.push(("name", name));
    }
    cols.push(("email", |l| l.account.profile.email.clone()));
    if show_pii {
        cols.push(("birth_date", |l| {
            l.account.profile.birth_date.clone().unwrap_or_default()
        }));
        cols.push(("phone", |l| {
            let p = &l.account.profile;
            match (&p.phone, &p.extension) {
                (Some(ph), Some(x)) => format!("{ph} x{x}"),
                (Some(ph), None) => ph.clone(),
                (None, _) => String::new(),
            }
        }));
    }
    cols.push(("status", |l| status(l).to_string()));
    cols.push(("sign_in", |l| {
        l.sign_in.as_str().unwrap_or_default().to_string()
    }));
    if activated {
        cols.push(("activated_at", |l| {
            l.activated_at.clone().unwrap_or_default()
        }));
    }
    if invitation {
        cols.push(("invitation", |l| {
            l.invitation.unwrap_or_default().to_string()
        }));
    }
    // A CSV cell's list is split at `; `, as its groups are.
    let roles: fn(&Listed) -> String = if csv {
        |l| l.account.roles.join("; ")
    } else {
        |l| l.account.roles.join(", ")
    };
    cols.push(("roles", roles));
    if csv {
        cols.push(("groups", |l| {
            let names: Vec<&str> = l.groups.iter().map(|g| g.name.as_str()).collect();
            names.join("; ")
        }));
        cols.push(("user_manager_of", |l| {
            let names: Vec<&str> = l
                .groups
                .iter()
                .filter(|g| g.user_manager)
                .map(|g| g.name.as_str())
                .collect();
            names.join("; ")
        }));
        cols.push(("case_manager", |l| {
            l.case_manager
                .as_ref()
                .map(|c| c.user_name.clone())
                .unwrap_or_default()
        }));
        cols.push(("case_manager_email", |l| {
            l.case_manager
                .as_ref()
                .and_then(|c| c.email.clone())
                .unwrap_or_default()
        }));
        cols.push(("entitlements", |l| {
            let all: Vec<String> = l.account.entitlements.iter().map(entitlement).collect();
            all.join("; ")
        }));
    } else {
        cols.push(("groups", |l| {
            let names: Vec<String> = l
                .groups
                .iter()
                .map(|g| {
                    if g.user_manager {
                        format!("{}*", g.name)
                    } else {
                        g.name.clone()
                    }
                })
                .collect();
            names.join(", ")
        }));
        cols.push(("case_manager", |l| {
            l.case_manager
                .as_ref()
                .map(|c| c.user_name.clone())
                .unwrap_or_default()
        }));
        cols.push(("entitlements", |l| {
            let all: Vec<String> = l.account.entitlements.iter().map(entitlement).collect();
            all.join(", ")
        }));
    }
    cols
}

fn any_activated(listed: &[Listed]) -> bool {
    listed.iter().any(|l| l.activated_at.is_some())
}

fn any_invitation(listed: &[Listed]) -> bool {
    listed.iter().any(|l| l.invitation.is_some())
}

/// Aligned columns, then a count: every cell from the store shown with its
/// control characters escaped.
fn table(listed: &[Listed], show_pii: bool) -> String {
    if listed.is_empty() {
        return "No accounts match.\n".into();
    }
    let cols = columns(
        show_pii,
        false,
        any_activated(listed),
        any_invitation(listed),
    );
    let header: Vec<String> = cols
        .iter()
        .map(|(h, _)| h.replace('_', " ").to_uppercase())
        .collect();
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|l| {
            cols.iter()
                .map(|(_, cell)| {
                    let c = cell(l);
                    let c = if c.is_empty() { "-".to_string() } else { c };
                    printable(&c).into_owned()
                })
                .collect()
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(&header);
    for r in &rows {
        s.push_str(&line(r));
    }
    let active = listed.iter().filter(|l| l.account.active).count();
    let invited = listed
        .iter()
        .filter(|l| l.account.active && l.sign_in == SignIn::Invited)
        .count();
    s.push_str(&format!(
        "{} ({active} active, of which {invited} never activated; {} deactivated)",
        plural(listed.len(), "account"),
        listed.len() - active
    ));
    if listed
        .iter()
        .any(|l| l.groups.iter().any(|g| g.user_manager))
    {
        s.push_str("; * user manager of the group");
    }
    s.push_str(".\n");
    s
}

/// RFC 4180 CSV with a header row. A cell that a spreadsheet would read as
/// a formula (`=`, `+`, `-`, `@`) starts with `'`, and control characters
/// are escaped, so opening the file runs nothing.
fn csv(listed: &[Listed], show_pii: bool) -> Result<String, csv::Error> {
    let cols = columns(
        show_pii,
        true,
        any_activated(listed),
        any_invitation(listed),
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cols.iter().map(|(h, _)| *h))?;
    for l in listed {
        w.write_record(cols.iter().map(|(_, cell)| inert(&cell(l))))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A CSV cell a spreadsheet shows as text.
fn inert(cell: &str) -> String {
    let cell = printable(cell);
    if cell.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}")
    } else {
        cell.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn formulas_and_controls_are_made_inert() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("+1"), "'+1");
        assert_eq!(inert("-2"), "'-2");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("a\u{1b}[31m"), "a\\u{1b}[31m");
        assert_eq!(inert("\t=1"), "\\u{9}=1");
        assert_eq!(inert("Ann"), "Ann");
    }
}
