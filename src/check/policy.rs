//! The policy block (SPEC §5): its own validity, and the rules it enforces.

use super::Index;
use super::finding::{Code, Finding};
use crate::roster::model::{MaxRemovals, Policy};
use crate::roster::normalize;
use crate::roster::{Roster, Section};

/// A restriction with its glob and regex compiled.
pub struct CompiledRestriction {
    pub files: globset::GlobMatcher,
    pub groups: regex::Regex,
    pub files_text: String,
}

/// Compile the restrictions; errors go to `out` with positions in the policy file.
pub fn compile_restrictions(roster: &Roster, out: &mut Vec<Finding>) -> Vec<CompiledRestriction> {
    let Some(pf) = roster.policy_at else {
        return Vec::new();
    };
    let mut compiled = Vec::new();
    for (i, r) in roster.policy.restrictions.iter().enumerate() {
        let i_s = i.to_string();
        let glob = globset::GlobBuilder::new(&r.files)
            .literal_separator(true)
            .build();
        let re = regex::Regex::new(&format!("^(?:{})$", r.groups));
        match (glob, re) {
            (Ok(g), Ok(re)) => compiled.push(CompiledRestriction {
                files: g.compile_matcher(),
                groups: re,
                files_text: r.files.clone(),
            }),
            (g, re) => {
                if let Err(e) = g {
                    let (file, pos) =
                        roster.key_pos(pf, &["policy", "restrictions", &i_s], "files");
                    out.push(
                        Finding::error(
                            Code::InvalidGlob,
                            file,
                            pos,
                            format!("`files` is not a valid glob: {}", e.kind()),
                        )
                        .help("use a glob such as `agencies/acme/*.yaml`")
                        .in_file(pf),
                    );
                }
                if let Err(e) = re {
                    let (file, pos) =
                        roster.key_pos(pf, &["policy", "restrictions", &i_s], "groups");
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    out.push(
                        Finding::error(Code::InvalidRegex, file, pos, format!("`groups` is not a valid regular expression: {why}"))
                            .help("use a regular expression such as `ACME .*` (it must match the whole name)")
                            .in_file(pf),
                    );
                }
            }
        }
    }
    compiled
}

fn validate_policy(roster: &Roster, out: &mut Vec<Finding>) {
    let Some(pf) = roster.policy_at else { return };
    let p: &Policy = &roster.policy;
    if let MaxRemovals::Percent(s) = &p.max_removals {
        let ok = s
            .strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| (0.0..=100.0).contains(&n));
        if !ok {
            let (file, pos) = roster.key_pos(pf, &["policy"], "max_removals");
            out.push(
                Finding::error(Code::InvalidPolicy, file, pos, format!("`max_removals` must be a count or a percentage from 0% to 100%, found \"{s}\""))
                    .help("write e.g. `max_removals: 10` or `max_removals: \"25%\"`")
                    .in_file(pf),
            );
        }
    }
    for (list, name) in [
        (&p.email_domains.allow, "allow"),
        (&p.email_domains.deny, "deny"),
    ] {
        for (i, d) in list.iter().enumerate() {
            let bare = d.trim().trim_start_matches('@');
            if bare.is_empty() || !bare.contains('.') || bare.contains(['@', ' ', '/']) {
                let (file, pos) = roster.key_pos(pf, &["policy", "email_domains"], name);
                out.push(
                    Finding::error(
                        Code::InvalidPolicy,
                        file,
                        pos,
                        format!(
                            "`email_domains.{name}` item {} is not a domain: \"{d}\"",
                            i + 1
                        ),
                    )
                    .help("write domains such as `example.org` (subdomains are included)")
                    .in_file(pf),
                );
            }
        }
    }
}

fn domain_matches(domain: &str, pattern: &str) -> bool {
    let p = pattern.trim().trim_start_matches('@').to_lowercase();
    domain == p || domain.ends_with(&format!(".{p}"))
}

pub fn check(roster: &Roster, index: &Index, out: &mut Vec<Finding>) {
    validate_policy(roster, out);
    let p = &roster.policy;
    let restrictions = compile_restrictions(roster, out);
    let by_email = &index.by_email;

    for e in &roster.partners {
        let partner = &e.item;
        if partner.active {
            for field in &p.required_fields {
                if !field.is_set(partner) {
                    let (file, pos) = roster.pos(Section::Partners, e.at, &[]);
                    out.push(
                        Finding::error(
                            Code::MissingRequiredField,
                            file,
                            pos,
                            format!(
                                "partner `{}` has no `{}`, which the policy requires",
                                normalize::email(&partner.email),
                                field.as_str()
                            ),
                        )
                        .help(format!(
                            "add `{}:` to the partner, or remove it from `policy.required_fields`",
                            field.as_str()
                        ))
                        .in_file(e.at.file),
                    );
                }
            }
        }
        if let Some(domain) = normalize::email_domain(&partner.email) {
            let allow = &p.email_domains.allow;
            let denied = p
                .email_domains
                .deny
                .iter()
                .find(|d| domain_matches(&domain, d));
            let not_allowed =
                !allow.is_empty() && !allow.iter().any(|d| domain_matches(&domain, d));
            if denied.is_some() || not_allowed {
                let (file, pos) = roster.pos(Section::Partners, e.at, &["email"]);
                let f = if let Some(d) = denied {
                    Finding::error(
                        Code::EmailDomainDenied,
                        file,
                        pos,
                        format!(
                            "`{}` uses domain `{domain}`, which the policy denies ({d})",
                            normalize::email(&partner.email)
                        ),
                    )
                } else {
                    Finding::error(
                        Code::EmailDomainNotAllowed,
                        file,
                        pos,
                        format!(
                            "`{}` uses domain `{domain}`, which is not in `email_domains.allow`",
                            normalize::email(&partner.email)
                        ),
                    )
                };
                out.push(
                    f.help(format!(
                        "allowed domains: {}",
                        if allow.is_empty() {
                            "any but the denied".to_string()
                        } else {
                            allow.join(", ")
                        }
                    ))
                    .in_file(e.at.file),
                );
            }
        }
    }

    for g in &roster.groups {
        let mut managers = 0u32;
        for (j, m) in g.item.members.iter().enumerate() {
            if !m.user_manager() {
                continue;
            }
            let Some(&pi) = by_email.get(normalize::email_key(m.email()).as_ref()) else {
                continue;
            };
            let partner = &roster.partners[pi].item;
            if partner.active {
                managers += 1;
            }
            let held = partner
                .named_roles()
                .unwrap_or_else(|| p.default_roles.iter().map(String::as_str).collect());
            if !held
                .iter()
                .any(|r| p.user_manager_roles.iter().any(|u| u.trim() == r.trim()))
            {
                let (file, pos) = roster.pos(Section::Groups, g.at, &["members", &j.to_string()]);
                let roles: Vec<&str> = p.user_manager_roles.iter().map(|r| r.trim()).collect();
                let has = match held.as_slice() {
                    [one] => format!("role `{one}`"),
                    many => format!(
                        "roles {}",
                        many.iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                out.push(
                    Finding::error(
                        Code::UserManagerRole,
                        file,
                        pos,
                        format!("`{}` has {has}, which may not manage users (allowed: {})", normalize::email(m.email()), roles.join(", ")),
                    )
                    .help("remove `user_manager: true`, change the partner's role, or add the role to `policy.user_manager_roles`")
                    .in_file(g.at.file),
                );
            }
        }
        if managers < p.min_user_managers {
            let (file, pos) = roster.pos(Section::Groups, g.at, &["name"]);
            out.push(
                Finding::error(
                    Code::TooFewUserManagers,
                    file,
                    pos,
                    format!("group `{}` has {managers} user manager(s); the policy requires at least {}", g.item.name, p.min_user_managers),
                )
                .help("mark a member with `user_manager: true`")
                .in_file(g.at.file),
            );
        }
        if !restrictions.is_empty() {
            let rel = &roster.files[g.at.file].rel;
            let allowed = restrictions
                .iter()
                .any(|r| r.files.is_match(rel) && r.groups.is_match(&g.item.name));
            if !allowed {
                let homes: Vec<&str> = restrictions
                    .iter()
                    .filter(|r| r.groups.is_match(&g.item.name))
                    .map(|r| r.files_text.as_str())
                    .collect();
                let (file, pos) = roster.pos(Section::Groups, g.at, &["name"]);
                let help = if homes.is_empty() {
                    "no restriction allows this group name in any file; add one to `policy.restrictions`".to_string()
                } else {
                    format!("declare it in a file matching {}", homes.join(" or "))
                };
                out.push(
                    Finding::error(
                        Code::RestrictedGroup,
                        file,
                        pos,
                        format!("group `{}` may not be declared in `{rel}`", g.item.name),
                    )
                    .help(help)
                    .in_file(g.at.file),
                );
            }
        }
    }
}

/// Licence seats counted from the roster alone (`roster check`): each
/// active partner (once per email) will hold an active account after a
/// plan, so more of them than `max_active_accounts` can never fit. A plan
/// counts the store as well (accounts no roster names), so it reports this
/// itself, with the exact figure.
pub fn seats(roster: &Roster, index: &Index) -> Option<Finding> {
    let max = roster.policy.max_active_accounts?;
    let pf = roster.policy_at?;
    let wanted = roster
        .partners
        .iter()
        .enumerate()
        .filter(|(i, e)| e.item.active && index.first(*i) == *i)
        .count() as u64;
    if wanted <= max {
        return None;
    }
    let (file, pos) = roster.key_pos(pf, &["policy"], "max_active_accounts");
    Some(
        Finding::error(
            Code::SeatsExceeded,
            file,
            pos,
            format!(
                "this roster names {wanted} active partners, more than max_active_accounts allows ({max})"
            ),
        )
        .help("deactivate accounts (`active: false`), or raise `max_active_accounts` when the licence grows")
        .in_file(pf),
    )
}

#[cfg(test)]
mod tests {
    /// Code, file, line and column of a finding.
    type Found = (&'static str, String, u32, u32);

    use super::*;
    use crate::check::rules::tests::roster_of;

    fn found(files: &[(&str, &str)]) -> Vec<Found> {
        let roster = roster_of(files);
        let index = Index::new(&roster);
        let mut out = Vec::new();
        check(&roster, &index, &mut out);
        out.iter()
            .map(|f| (f.code.as_str(), f.file.clone(), f.line, f.column))
            .collect()
    }

    /// Lines 1-13: a group of two with one manager, then `policy:` on line 14.
    const BASE: &str = "\
version: 1
groups:
  - name: ABC
    members:
      - email: ann@example.org
        user_manager: true
      - bob@sub.example.com
partners:
  - email: ann@example.org
    first_name: Ann
    last_name: Lee
    role: public-viewer
  - email: bob@sub.example.com
    first_name: Bob
    last_name: Ray
policy:
  required_fields: []
";

    fn with(policy: &str) -> String {
        format!("{BASE}{policy}")
    }

    #[test]
    fn each_policy_rule_gives_its_code_at_its_place() {
        let r = |c: &'static str, l, col| (c, "r.yaml".to_string(), l, col);
        let cases: Vec<(&str, String, Vec<Found>)> = vec![
            ("no rules", with(""), vec![]),
            (
                "allowed domain and its subdomains",
                with("  email_domains:\n    allow: [example.org, example.com]\n"),
                vec![],
            ),
            (
                "denied subdomain",
                with("  email_domains:\n    deny: [\"@example.com\"]\n"),
                vec![r("email-domain-denied", 13, 12)],
            ),
            (
                "denial is by whole label",
                with("  email_domains:\n    deny: [ple.com]\n"),
                vec![],
            ),
            (
                "not allowed",
                with("  email_domains:\n    allow: [example.org]\n"),
                vec![r("email-domain-not-allowed", 13, 12)],
            ),
            (
                "required field missing",
                BASE.replace("[]", "[phone]"),
                vec![
                    r("missing-required-field", 9, 5),
                    r("missing-required-field", 13, 5),
                ],
            ),
            (
                "too few managers",
                with("  min_user_managers: 2\n"),
                vec![r("too-few-user-managers", 3, 11)],
            ),
            (
                "manager role not allowed",
                with("  user_manager_roles: [individual]\n"),
                vec![r("user-manager-role", 5, 9)],
            ),
            (
                "bad percentage",
                with("  max_removals: \"101%\"\n"),
                vec![r("invalid-policy", 18, 3)],
            ),
            (
                "a percentage past 100 with decimals",
                with("  max_removals: \"100.5%\"\n"),
                vec![r("invalid-policy", 18, 3)],
            ),
            (
                "a count and a percentage are fine",
                with("  max_removals: \"12.5%\"\n"),
                vec![],
            ),
            (
                "not a domain",
                with("  email_domains:\n    deny: [localhost]\n"),
                vec![r("invalid-policy", 19, 5)],
            ),
            (
                "bad glob",
                with("  restrictions:\n    - files: \"a/[b\"\n      groups: ABC\n"),
                vec![r("invalid-glob", 19, 7)],
            ),
            (
                "bad regex",
                with("  restrictions:\n    - files: \"*.yaml\"\n      groups: \"(ABC\"\n"),
                vec![r("invalid-regex", 20, 7)],
            ),
            (
                "restricted elsewhere",
                with("  restrictions:\n    - files: \"other/*.yaml\"\n      groups: \"AB.\"\n"),
                vec![r("restricted-group", 3, 11)],
            ),
            (
                "restriction matches",
                with("  restrictions:\n    - files: \"r.yaml\"\n      groups: \"AB.\"\n"),
                vec![],
            ),
        ];
        for (name, text, want) in cases {
            let mut got = found(&[("r.yaml", &text)]);
            got.sort_by_key(|g| (g.2, g.3));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn inactive_managers_do_not_count_and_required_fields_skip_inactive_partners() {
        let text = with("  min_user_managers: 1\n  required_fields: [phone]\n")
            .replace(
                "    role: public-viewer\n",
                "    role: public-viewer\n    active: false\n",
            )
            .replace("  required_fields: []\n", "");
        let got = found(&[("r.yaml", &text)]);
        let codes: Vec<_> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            codes,
            ["missing-required-field", "too-few-user-managers"],
            "{got:?}"
        );
    }

    #[test]
    fn restrictions_match_the_file_path_relative_to_the_roster() {
        let groups = "version: 1\ngroups:\n  - name: ACME Sales\n";
        let policy = "version: 1\npolicy:\n  required_fields: []\n  restrictions:\n    - files: \"agencies/acme/*.yaml\"\n      groups: \"ACME .*\"\n";
        assert_eq!(
            found(&[("agencies/acme/a.yaml", groups), ("policy.yaml", policy)]),
            vec![]
        );
        assert_eq!(
            found(&[("agencies/other/a.yaml", groups), ("policy.yaml", policy)]),
            vec![(
                "restricted-group",
                "agencies/other/a.yaml".to_string(),
                3,
                11
            )]
        );
        // `*` does not cross a `/`.
        assert_eq!(
            found(&[("agencies/acme/x/a.yaml", groups), ("policy.yaml", policy)]),
            vec![(
                "restricted-group",
                "agencies/acme/x/a.yaml".to_string(),
                3,
                11
            )]
        );
    }

    #[test]
    fn domains_match_whole_labels_case_insensitively() {
        for (domain, pattern, want) in [
            ("example.org", "example.org", true),
            ("a.example.org", "example.org", true),
            ("a.example.org", "@Example.ORG", true),
            ("badexample.org", "example.org", false),
            ("example.org", "a.example.org", false),
        ] {
            assert_eq!(
                domain_matches(domain, pattern),
                want,
                "{domain} ~ {pattern}"
            );
        }
    }

    #[test]
    fn seats_are_counted_from_the_roster_alone() {
        let seats = |policy: &str, extra: &str| {
            let text = with(policy).replace("policy:\n", &format!("{extra}policy:\n"));
            let roster = roster_of(&[("r.yaml", text.as_str())]);
            seats(&roster, &Index::new(&roster))
                .map(|f| (f.code.as_str(), f.line, f.column, f.message))
        };
        // Two active partners, two seats: fine.
        assert_eq!(seats("  max_active_accounts: 2\n", ""), None);
        // One seat: `max_active_accounts` on line 18 is where it is said.
        assert_eq!(
            seats("  max_active_accounts: 1\n", ""),
            Some((
                "seats-exceeded",
                18,
                3,
                "this roster names 2 active partners, more than max_active_accounts allows (1)"
                    .to_string()
            ))
        );
        // An inactive partner takes no seat.
        let inactive =
            "  - email: cy@example.org\n    first_name: Cy\n    last_name: Lo\n    active: false\n";
        assert_eq!(seats("  max_active_accounts: 2\n", inactive), None);
        let active = inactive.replace("    active: false\n", "");
        assert_eq!(
            seats("  max_active_accounts: 2\n", &active).map(|f| f.3),
            Some(
                "this roster names 3 active partners, more than max_active_accounts allows (2)"
                    .to_string()
            )
        );
        // No limit, no count.
        assert_eq!(seats("", &active), None);
    }
}
