//! Plans for people: the terminal (terraform-like + / - / ~, grouped by
//! group) and Markdown for a pull-request comment. Neither prints birth
//! dates or phones.

use super::{Action, Note, Outcome, Plan, Resolution};
use crate::report::{printable, printable_text};
use anstyle::{AnsiColor, Style};
use std::collections::BTreeMap;
use std::fmt::Write;

/// GitHub refuses comments longer than this.
pub const MARKDOWN_LIMIT: usize = 65_535;

struct Paint(bool);

impl Paint {
    /// `s` in color; names from a store or provider in it cannot add
    /// escapes of their own.
    fn c(&self, style: Style, s: &str) -> String {
        let s = printable(s);
        if self.0 {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }
    fn add(&self, s: &str) -> String {
        self.c(AnsiColor::Green.on_default(), s)
    }
    fn del(&self, s: &str) -> String {
        self.c(AnsiColor::Red.on_default(), s)
    }
    fn change(&self, s: &str) -> String {
        self.c(AnsiColor::Yellow.on_default(), s)
    }
    fn bold(&self, s: &str) -> String {
        self.c(Style::new().bold(), s)
    }
}

/// The one-line summary, e.g. "Plan: 2 accounts to create, 3 memberships to add."
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let parts: Vec<String> = [
        (s.create_groups, "group", "to create"),
        (s.create_accounts, "account", "to create"),
        (s.rename_accounts, "account", "to rename"),
        (s.reactivate_accounts, "account", "to reactivate"),
        (s.update_profiles, "profile", "to update"),
        (s.grant_roles, "role", "to grant"),
        (s.grant_entitlements, "entitlement", "to grant"),
        (s.add_memberships, "membership", "to add"),
        (s.grant_user_manager, "user-manager grant", "to give"),
        (s.set_case_managers, "case manager", "to set"),
        (s.revoke_user_manager, "user-manager grant", "to take back"),
        (s.remove_memberships, "membership", "to remove"),
        (s.revoke_entitlements, "entitlement", "to revoke"),
        (s.revoke_roles, "role", "to revoke"),
        (s.deactivate_accounts, "account", "to deactivate"),
    ]
    .iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, what, verb)| {
        let mut part = format!("{} {verb}", crate::report::plural(*n as usize, what));
        // New accounts come with their roles: say how many.
        if *what == "account" && *verb == "to create" && s.new_account_roles > 0 {
            let _ = write!(
                part,
                " (with {})",
                crate::report::plural(s.new_account_roles as usize, "role")
            );
        }
        part
    })
    .collect();
    let mut line = if parts.is_empty() {
        "No changes: the store matches the roster.".to_string()
    } else {
        format!("Plan: {}.", parts.join(", "))
    };
    if s.unresolved > 0 {
        let _ = write!(
            line,
            " {} unresolved: apply refuses this plan.",
            crate::report::plural(s.unresolved as usize, "partner")
        );
    }
    if let Some(seats) = &plan.seats {
        let _ = write!(
            line,
            " Seats: {} of {} used, {} free.",
            seats.used, seats.max, seats.free
        );
    }
    line
}

fn unresolved_text(r: &Resolution) -> String {
    let how = match r.outcome {
        Outcome::NeedsConfirmation => "needs confirmation",
        Outcome::Ambiguous => "ambiguous",
        _ => "conflict",
    };
    let via = r
        .via
        .map(|v| format!(", found via {}", v.as_str()))
        .unwrap_or_default();
    let mut s = format!("{}: {how}{via}", r.partner);
    if !r.candidates.is_empty() {
        let _ = write!(s, "; candidates: {}", r.candidates.join(", "));
    }
    if !r.differs.is_empty() {
        let d: Vec<&str> = r.differs.iter().map(|d| d.as_str()).collect();
        let _ = write!(s, "; differs: {}", d.join(", "));
    }
    s
}

/// Membership changes per group, in plan order.
fn by_group(plan: &Plan) -> BTreeMap<&str, Vec<&Action>> {
    let mut groups: BTreeMap<&str, Vec<&Action>> = BTreeMap::new();
    for a in &plan.actions {
        if let Some(g) = a.group() {
            groups.entry(g).or_default().push(a);
        }
    }
    groups
}

/// (sign, text) of one action, for people.
pub(crate) fn line(a: &Action) -> (char, String) {
    match a {
        Action::CreateGroup { kind, lwia, .. } => (
            '+',
            format!(
                "create group ({}{})",
                kind.as_str(),
                lwia.map(|l| format!(", LWIA {l}")).unwrap_or_default()
            ),
        ),
        Action::CreateAccount {
            account,
            partner,
            profile,
            roles,
            sign_in,
        } => (
            '+',
            format!(
                "{account}: create for {partner} ({} {}, {}{})",
                profile.first_name,
                profile.last_name,
                if roles.is_empty() {
                    "no role".to_string()
                } else {
                    roles.join(", ")
                },
                sign_in
                    .map(|s| format!(", sign-in {}", s.as_str()))
                    .unwrap_or_default()
            ),
        ),
        Action::RenameAccount {
            account, new_name, ..
        } => ('~', format!("{account}: rename to {new_name}")),
        Action::GrantRole { account, role } => ('+', format!("{account}: role {role}")),
        Action::RevokeRole { account, role } => ('-', format!("{account}: role {role}")),
        Action::GrantEntitlement {
            account,
            kind,
            value,
        } => ('+', format!("{account}: {kind} {value}")),
        Action::RevokeEntitlement {
            account,
            kind,
            value,
        } => ('-', format!("{account}: {kind} {value}")),
        Action::SetCaseManager {
            account,
            case_manager,
        } => (
            '~',
            match case_manager {
                Some(m) => format!("{account}: case manager {m}"),
                None => format!("{account}: no case manager"),
            },
        ),
        Action::ReactivateAccount { account, partner } => {
            ('~', format!("{account}: reactivate for {partner}"))
        }
        Action::UpdateProfile {
            account, fields, ..
        } => ('~', format!("{account}: update {}", fields.join(", "))),
        Action::AddMembership {
            account,
            user_manager,
            ..
        } => (
            '+',
            format!(
                "{account}{}",
                if *user_manager { " (user manager)" } else { "" }
            ),
        ),
        Action::GrantUserManager { account, .. } => ('~', format!("{account}: grant user manager")),
        Action::RevokeUserManager { account, .. } => {
            ('~', format!("{account}: take back user manager"))
        }
        Action::RemoveMembership { account, .. } => ('-', account.clone()),
        Action::DeactivateAccount { account, partner } => (
            '-',
            format!(
                "{account}: deactivate{}",
                partner
                    .as_ref()
                    .map(|p| format!(" ({p} is active: false)"))
                    .unwrap_or_else(|| " (left in no group)".into())
            ),
        ),
    }
}

/// A count of resolutions by outcome and via, e.g. "5 matched (3 email, 2 pinned)".
fn resolution_counts(plan: &Plan) -> String {
    let mut counts: BTreeMap<(u8, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    for r in &plan.resolutions {
        let order = match r.outcome {
            Outcome::Matched => 0,
            Outcome::Reactivate => 1,
            Outcome::Create => 2,
            Outcome::NeedsConfirmation => 3,
            Outcome::Ambiguous => 4,
            Outcome::Conflict => 5,
        };
        *counts
            .entry((order, r.outcome.as_str()))
            .or_default()
            .entry(r.via.map_or("new", |v| v.as_str()))
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|((_, outcome), vias)| {
            let n: usize = vias.values().sum();
            let detail: Vec<String> = vias.iter().map(|(v, n)| format!("{n} {v}")).collect();
            format!("{n} {} ({})", outcome.replace('_', " "), detail.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn notes(out: &mut String, title: &str, list: &[Note], p: &Paint) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", p.bold(title));
    for n in list {
        let at = match (&n.file, n.line) {
            (Some(f), Some(l)) => format!(" ({f}:{l}:{})", n.column.unwrap_or(1)),
            _ => String::new(),
        };
        let line = format!("  {}: {}{at}", n.code, n.message);
        let _ = writeln!(out, "{}", printable(&line));
        if let Some(h) = &n.help {
            let _ = writeln!(out, "      {}", printable_text(h));
        }
    }
}

/// The plan for a terminal or a CI log.
pub fn human(plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Store {} at revision {} · roster {}",
        printable(&plan.store.url),
        plan.store.revision,
        // A saved plan is user input: cut by characters, not bytes.
        plan.roster_digest.chars().take(19).collect::<String>()
    );
    if let Some(d) = &plan.digest {
        let _ = writeln!(out, "Plan {}", d.chars().take(71).collect::<String>());
    }
    let unresolved: Vec<&Resolution> = plan.unresolved().collect();
    if !unresolved.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            p.c(
                AnsiColor::Red.on_default().bold(),
                &format!(
                    "Unresolved partners ({}): apply refuses this plan until they are settled",
                    unresolved.len()
                )
            )
        );
        for r in unresolved {
            let _ = writeln!(out, "  {} {}", p.del("?"), printable(&unresolved_text(r)));
            if let Some(reason) = &r.reason {
                let _ = writeln!(out, "      {}", printable_text(reason));
            }
        }
    }
    if !plan.resolutions.is_empty() {
        let _ = writeln!(out, "\nPartners: {}", resolution_counts(plan));
        for r in plan
            .resolutions
            .iter()
            .filter(|r| !r.outcome.is_unresolved() && r.outcome != Outcome::Matched)
        {
            let via = r
                .via
                .map(|v| format!(" via {}", v.as_str()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} → {}{via}",
                printable(&r.partner),
                p.bold(&format!(
                    "{} {}",
                    r.outcome.as_str(),
                    r.account.as_deref().unwrap_or("")
                ))
            );
        }
    }
    let sign = |c: char, s: &str| match c {
        '+' => p.add(&format!("+ {s}")),
        '-' => p.del(&format!("- {s}")),
        _ => p.change(&format!("~ {s}")),
    };
    let accounts: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| a.group().is_none())
        .collect();
    if !accounts.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Accounts"));
        for a in accounts {
            let (c, s) = line(a);
            let _ = writeln!(out, "  {}", sign(c, &s));
        }
    }
    for (g, actions) in by_group(plan) {
        let _ = writeln!(out, "\n{}", p.bold(&format!("Group {g}")));
        for a in actions {
            let (c, s) = line(a);
            let _ = writeln!(out, "  {}", sign(c, &s));
        }
    }
    notes(&mut out, "Policy violations", &plan.violations, &p);
    notes(&mut out, "Warnings", &plan.warnings, &p);
    let _ = writeln!(out, "\n{}", p.bold(&summary_line(plan)));
    out
}

/// Text inside HTML (`<summary>`), where Markdown escapes do not apply.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '|' | '<' | '>' | '*' | '_' | '`' | '[' | ']' | '\\' | '#'
        ) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// The plan as a pull-request comment: collapsible sections, never longer
/// than [`MARKDOWN_LIMIT`] characters (what does not fit is summarized).
pub fn markdown(plan: &Plan) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "### roster plan\n");
    let _ = writeln!(head, "**{}**\n", md_escape(&summary_line(plan)));
    let _ = writeln!(
        head,
        "Store `{}` at revision {} · roster `{}`\n",
        plan.store.url.replace('`', "'"),
        plan.store.revision,
        plan.roster_digest.replace('`', "'")
    );
    if let Some(d) = &plan.digest {
        let _ = writeln!(head, "Plan `{}`\n", d.replace('`', "'"));
    }
    let mut sections = Vec::new();
    let unresolved: Vec<&Resolution> = plan.unresolved().collect();
    if !unresolved.is_empty() {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "> [!WARNING]\n> {} unresolved: apply refuses this plan until they are settled.\n",
            crate::report::plural(unresolved.len(), "partner")
        );
        let _ = writeln!(s, "| partner | outcome | via | candidates | differs |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in unresolved {
            let d: Vec<&str> = r.differs.iter().map(|d| d.as_str()).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                md_escape(&r.partner),
                r.outcome.as_str(),
                r.via.map_or("", |v| v.as_str()),
                md_escape(&r.candidates.join(", ")),
                d.join(", ")
            );
        }
        sections.push(s);
    }
    let details = |title: String, lines: Vec<String>| -> String {
        let mut s = format!("<details><summary>{}</summary>\n\n```diff\n", title);
        for l in lines {
            s.push_str(&l.replace("```", "'''"));
            s.push('\n');
        }
        s.push_str("```\n</details>\n");
        s
    };
    let accounts: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.group().is_none())
        .map(|a| {
            let (c, s) = line(a);
            format!("{c} {s}")
        })
        .collect();
    if !accounts.is_empty() {
        sections.push(details(format!("Accounts ({})", accounts.len()), accounts));
    }
    for (g, actions) in by_group(plan) {
        let (mut add, mut del, mut chg) = (0, 0, 0);
        let lines: Vec<String> = actions
            .iter()
            .map(|a| {
                let (c, s) = line(a);
                match c {
                    '+' => add += 1,
                    '-' => del += 1,
                    _ => chg += 1,
                }
                format!("{c} {s}")
            })
            .collect();
        sections.push(details(
            format!("Group {} (+{add} −{del} ~{chg})", html_escape(g)),
            lines,
        ));
    }
    for (title, list) in [
        ("Policy violations", &plan.violations),
        ("Warnings", &plan.warnings),
    ] {
        if list.is_empty() {
            continue;
        }
        let items: Vec<String> = list
            .iter()
            .map(|n| format!("- `{}`: {}", n.code, md_escape(&n.message)))
            .collect();
        sections.push(format!(
            "<details><summary>{title} ({})</summary>\n\n{}\n</details>\n",
            list.len(),
            items.join("\n")
        ));
    }
    let mut out = printable_text(&head).into_owned();
    let total = sections.len();
    for (i, s) in sections.into_iter().enumerate() {
        let s = printable_text(&s);
        // Leave room for the note about what was left out.
        if out.len() + s.len() + 200 > MARKDOWN_LIMIT {
            let _ = writeln!(
                out,
                "\n_{} more section(s) not shown: the plan is too large for one comment. Run `roster plan` or read the JSON plan for all of it._",
                total - i
            );
            break;
        }
        out.push_str(&s);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PersonalData, StoreRef, Summary};

    fn plan_with(groups: usize, per_group: usize) -> Plan {
        let mut actions = Vec::new();
        for g in 0..groups {
            for a in 0..per_group {
                actions.push(Action::AddMembership {
                    account: format!("User{a:05}"),
                    group: format!("Group <{g:04}> | *x*"),
                    user_manager: a == 0,
                });
            }
        }
        let summary = crate::plan::compute::summarize(&actions, &[]);
        Plan {
            removal_caps: Vec::new(),
            seats: None,
            format_version: 1,
            store: StoreRef {
                url: "sqlite:roster.db".into(),
                revision: 7,
            },
            roster_digest: "sha256:00".into(),
            summary,
            resolutions: Vec::new(),
            actions,
            warnings: Vec::new(),
            violations: Vec::new(),
            removal_limit: 0,
            personal_data: PersonalData::Omitted,
            digest: None,
            seal: None,
        }
    }

    #[test]
    fn markdown_never_exceeds_a_comment() {
        let small = markdown(&plan_with(2, 3));
        assert!(
            small.contains("<details><summary>Group Group &lt;0001&gt; | *x* (+3 −0 ~0)</summary>"),
            "{small}"
        );
        assert!(small.contains("+ User00000 (user manager)"));
        assert!(!small.contains("not shown"));
        let big = markdown(&plan_with(400, 50));
        assert!(big.chars().count() <= MARKDOWN_LIMIT, "{}", big.len());
        assert!(big.contains("more section(s) not shown"), "summarized");
        assert!(
            big.starts_with("### roster plan\n\n**Plan: 20000 memberships to add.**"),
            "{}",
            &big[..80]
        );
        let _ = Summary::default();
    }

    #[test]
    fn no_changes_says_so() {
        let p = plan_with(0, 0);
        assert_eq!(
            summary_line(&p),
            "No changes: the store matches the roster."
        );
        assert!(human(&p, false).ends_with("No changes: the store matches the roster.\n"));
        assert!(
            human(&plan_with(1, 1), true).contains("\x1b[32m+ User00000 (user manager)\x1b[0m")
        );
    }
}
